from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.app, name="app"),
    path("signup/", views.SignupView.as_view(), name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("account/", views.ProfileView.as_view(), name="profile"),
    path("account/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("account/sign-out-apps/", views.sign_out_apps, name="sign_out_apps"),
]
