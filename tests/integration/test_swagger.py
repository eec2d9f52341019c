"""The daemon serves its OpenAPI description and a Swagger UI for it."""
import yaml  # noqa: F401  (python3-yaml comes with Debian's pytest stack; skip when absent)
import pytest


def test_openapi_served(daemon):
    r = daemon.get("/cagw/openapi.yaml")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/yaml")
    doc = yaml.safe_load(r.text)
    assert doc["openapi"].startswith("3.") and "/cagw/v1/certificate-authorities" in doc["paths"]


def test_swagger_ui(daemon):
    r = daemon.get("/cagw/swagger-ui")
    assert r.status_code == 200 and "swagger-ui" in r.text.lower(), r.text[:300]
    js = daemon.get("/cagw/swagger-ui/swagger-initializer.js")
    assert js.status_code == 200 and "/cagw/openapi.yaml" in js.text
    bundle = daemon.get("/cagw/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100000
    for bad in ("..%2F..%2Fetc%2Fpasswd", ".hidden", "a%00b"):
        assert daemon.get(f"/cagw/swagger-ui/{bad}").status_code == 404
