from django.urls import path

from messaging.api import views

urlpatterns = [
    path("conversations/", views.ConversationListView.as_view(), name="conversations"),
    path(
        "conversations/<id:conversation_id>/",
        views.ConversationDetailView.as_view(),
        name="conversation",
    ),
    path(
        "conversations/<id:conversation_id>/members/",
        views.MembersView.as_view(),
        name="conversation-members",
    ),
    path(
        "conversations/<id:conversation_id>/members/<id:user_id>/",
        views.MemberView.as_view(),
        name="conversation-member",
    ),
    path(
        "conversations/<id:conversation_id>/messages/",
        views.MessagesView.as_view(),
        name="conversation-messages",
    ),
    path(
        "conversations/<id:conversation_id>/read/",
        views.ReadView.as_view(),
        name="conversation-read",
    ),
    path("messages/<id:message_id>/", views.MessageView.as_view(), name="message"),
    path("messages/<id:message_id>/report/", views.ReportView.as_view(), name="message-report"),
    path("sync/", views.SyncView.as_view(), name="sync"),
    path("chat-server/", views.ChatServerView.as_view(), name="chat-server"),
]
