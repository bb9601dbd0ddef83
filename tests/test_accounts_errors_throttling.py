"""One error shape across the API, and the rate limits (429 with Retry-After)."""

import pytest
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny

from chatproject import urls as project_urls
from tests.accounts_fixtures import assert_error, call

TOKEN = "/api/v1/auth/token/"
REGISTER = "/api/v1/auth/register/"
ME = "/api/v1/me/"


# --- a URLconf for this module: the project's, plus two views that crash ----------


def django_view_that_crashes(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret internals")


@api_view(["GET"])
@permission_classes([AllowAny])
def drf_view_that_crashes(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("secret internals")


urlpatterns = [
    path("api/v1/test-django-crash/", django_view_that_crashes),
    path("api/v1/test-drf-crash/", drf_view_that_crashes),
    path("test-page-crash/", django_view_that_crashes),
    *project_urls.urlpatterns,
]
handler404 = project_urls.handler404
handler500 = project_urls.handler500


# --- errors ------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_unknown_api_path_answers_json_404(client, alice):
    response = client.get("/api/v1/no-such-thing/", **alice.auth)

    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"code": "not_found", "detail": "Not found."}


@pytest.mark.django_db
def test_an_unknown_page_outside_the_api_stays_html(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")


@pytest.mark.django_db
@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/api/v1/test-django-crash/", "/api/v1/test-drf-crash/"])
def test_a_crash_under_the_api_answers_json_500_without_internals(url):
    response = Client(raise_request_exception=False).get(url)

    assert response.status_code == 500
    assert response.json() == {"code": "server_error", "detail": "Internal server error."}
    assert b"secret internals" not in response.content


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_a_crash_on_a_page_stays_html():
    response = Client(raise_request_exception=False).get("/test-page-crash/")

    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"secret internals" not in response.content


@pytest.mark.django_db
def test_a_wrong_method_answers_405_in_the_error_shape(client, alice):
    response = call(client, "put", ME, {"display_name": "x"}, **alice.auth)

    assert_error(response, 405, "method_not_allowed")


@pytest.mark.django_db
def test_a_wrong_content_type_answers_415_in_the_error_shape(client, alice):
    response = client.patch(ME, data="display_name=x", content_type="text/plain", **alice.auth)

    assert_error(response, 415, "unsupported_media_type")


# --- throttling ---------------------------------------------------------------------


@pytest.fixture
def low_rates(settings):
    """Tiny limits for this test only; DRF's settings reload with the setting."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"auth": "2/min", "user": "3/min"},
    }


def fresh_address(last_octet: int) -> str:
    address = f"203.0.113.{last_octet}"
    cache.delete(f"throttle_auth_{address}")
    return address


@pytest.mark.django_db
def test_log_in_attempts_are_limited_per_address_with_retry_after(client, alice, low_rates):
    address = fresh_address(1)
    credentials = {"username": "alice", "password": alice.password}

    first = call(client, "post", TOKEN, {**credentials, "password": "wrong"}, REMOTE_ADDR=address)
    second = call(client, "post", TOKEN, credentials, REMOTE_ADDR=address)
    third = call(client, "post", TOKEN, credentials, REMOTE_ADDR=address)

    assert (first.status_code, second.status_code) == (401, 200)
    body = assert_error(third, 429, "throttled")
    assert "available in" in body["detail"]
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    # Another address is not affected.
    other = call(client, "post", TOKEN, credentials, REMOTE_ADDR=fresh_address(2))
    assert other.status_code == 200


@pytest.mark.django_db
def test_sign_up_and_log_in_share_one_counter(client, alice, low_rates):
    address = fresh_address(3)

    call(client, "post", TOKEN, {"username": "x", "password": "y"}, REMOTE_ADDR=address)
    call(client, "post", REGISTER, {"username": "y", "password": "z"}, REMOTE_ADDR=address)
    third = call(
        client,
        "post",
        REGISTER,
        {"username": "newbie", "password": "tangerine-lighthouse-42"},
        REMOTE_ADDR=address,
    )

    assert_error(third, 429, "throttled")


@pytest.mark.django_db
def test_a_forged_forwarded_for_header_does_not_dodge_the_limit(client, low_rates):
    address = fresh_address(4)

    answers = [
        call(
            client,
            "post",
            TOKEN,
            {"username": "x", "password": "y"},
            REMOTE_ADDR=address,
            HTTP_X_FORWARDED_FOR=f"198.51.100.{attempt}",
        ).status_code
        for attempt in range(3)
    ]

    assert answers == [401, 401, 429]


@pytest.mark.django_db
def test_the_api_is_limited_per_user(client, alice, bob, low_rates):
    cache.delete_many([f"throttle_user_{alice.id}", f"throttle_user_{bob.id}"])

    answers = [call(client, "get", ME, **alice.auth).status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]
    assert int(call(client, "get", ME, **alice.auth).headers["Retry-After"]) >= 1
    assert call(client, "get", ME, **bob.auth).status_code == 200


@pytest.mark.django_db
def test_web_log_in_shares_the_limit_and_answers_a_429_page(client, alice, low_rates):
    address = fresh_address(5)
    call(client, "post", TOKEN, {"username": "alice", "password": "wrong"}, REMOTE_ADDR=address)
    client.post("/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR=address)

    response = client.post(
        "/login/", {"username": "alice", "password": alice.password}, REMOTE_ADDR=address
    )

    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert b"Too many attempts" in response.content
    assert "_auth_user_id" not in client.session
    # Reading the page is not an attempt.
    assert client.get("/login/", REMOTE_ADDR=address).status_code == 200
