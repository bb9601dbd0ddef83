"""The OpenAPI schema: it validates, it is served, and the API keeps to it."""

import subprocess
import sys
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from accounts import services
from accounts.models import User
from chatproject.wsgi import application

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS_PATHS = r"^/api/v1/(auth/|me/|users/|devices/)"


def test_the_schema_validates_without_a_single_warning(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            str(tmp_path / "schema.yaml"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert "/api/v1/devices/{device_id}/" in (tmp_path / "schema.yaml").read_text()


@pytest.mark.django_db
def test_the_schema_and_the_interactive_docs_are_served(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    docs = client.get("/api/docs/")

    assert schema.status_code == 200
    spec = schema.json()
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert set(spec["components"]["schemas"]["Error"]["properties"]) == {
        "code",
        "detail",
        "fields",
    }
    assert docs.status_code == 200
    # Swagger UI from the sidecar package, not a CDN an offline browser cannot reach.
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs.content


@pytest.mark.django_db
def test_every_accounts_operation_documents_its_errors(client):
    spec = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = [
        (path, method, operation)
        for path, methods in spec["paths"].items()
        if path.startswith(("/api/v1/auth/", "/api/v1/me/", "/api/v1/users/", "/api/v1/devices/"))
        for method, operation in methods.items()
    ]

    assert len(operations) == 12
    for path, method, operation in operations:
        responses = operation["responses"]
        assert "429" in responses, (method, path)
        assert "Retry-After" in responses["429"]["headers"], (method, path)
        public = path in {"/api/v1/auth/register/", "/api/v1/auth/token/"}
        assert public or "401" in responses, (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


# --- property-based: schemathesis against the WSGI app ----------------------------------


# Loaded at collection (no database needed to serve the schema). Schemathesis'
# lazy `from_fixture` loader does not work with pytest 9 yet.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application).include(
    path_regex=ACCOUNTS_PATHS
)


@schema.parametrize()
@hypothesis_settings(
    max_examples=30,
    deadline=None,
    database=None,
    derandomize=True,  # the same examples every run: CI is not a lottery
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@pytest.mark.django_db(transaction=True)
def test_the_accounts_api_keeps_to_its_schema(case):
    """No 5xx, no undocumented status, no body or header that breaks the schema, and
    schema-invalid input refused. Schema-valid input may still be refused (a weak
    password, a taken name, an unknown time zone): the schema cannot say those."""
    # Schemathesis calls the app from another thread, so the data is committed
    # (transaction=True). One owner per operation, a fresh token for each example
    # (an example may have logged the previous one out).
    owner, _ = User.objects.get_or_create(username="prop-owner")
    _, token = services.token_issue(user=owner)

    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        # Negative data may be accepted after normalisation (a token padded with
        # whitespace over maxLength is trimmed to a valid one).
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
    )


@pytest.mark.django_db(transaction=True)
def test_the_property_run_is_signed_in():
    """Guards the run above: its requests do authenticate (else all would be 401s)."""
    owner, _ = User.objects.get_or_create(username="prop-owner")
    _, token = services.token_issue(user=owner)

    response = (
        schema["/api/v1/me/"]["GET"].Case().call(headers={"Authorization": f"Bearer {token}"})
    )

    assert response.status_code == 200
    assert response.json()["username"] == "prop-owner"
