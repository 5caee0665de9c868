"""API keys on every route: the app's routes are walked (a new route is checked without a line
here), each answers 401 without a key, or with an unknown, tampered or revoked one, 403 with a
key below the scope it needs, and passes with a key of exactly that scope; a real workflow gets
its 2xx with the right keys; public reads, the open default, the refusal to start open on a
non-loopback address, ``losscast keys`` (no token in the logs: tests/test_observability.py)."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.auth import GRANTS, SCOPES, OpenExposure, create_key, required_scope
from app.main import create_app
from app.schemas import SMALL_RUN
from app.settings import Settings
from losscast_cli.main import main

#: The routes anyone may call once keys exist (a new public route must be added here on purpose).
PUBLIC = {("GET", "/healthz"), ("GET", "/")}


def _routes(routes) -> list[APIRoute]:
    """Every APIRoute of the app, through the objects FastAPI wraps included routers in."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
            continue
        context = getattr(route, "include_context", None)
        nested = getattr(route, "routes", None)
        if context is not None:
            nested = context.included_router.routes
        if nested is not None and not route.__class__.__name__ == "Mount":
            found.extend(_routes(nested))
    return found


def _operations(app) -> list[tuple[str, str]]:
    operations = {
        (method, route.path)
        for route in _routes(app.routes)
        for method in route.methods
        if method != "HEAD" and route.name != "refuses_methods"
    }
    return sorted(operations)


def _settings(tmp_path, **overrides) -> Settings:
    values = {
        "database_url": f"sqlite:///{tmp_path / 'auth.db'}",
        "warmup": False,
        "refit": False,
        "jax_cache_dir": "",
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def app(tmp_path):
    return create_app(_settings(tmp_path))


@pytest.fixture
def keys(app):
    """A client on the app and one token per scope (made after the start, as the CLI would)."""
    with TestClient(app, raise_server_exceptions=False) as client:
        tokens = {scope: create_key(app.state.store, scope, [scope])[1] for scope in SCOPES}
        yield client, tokens


def _call(client, method, path, token=None):
    url = re.sub(r"\{[^}]+\}", "id_0", path)  # any path parameter: auth comes first
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method in ("POST", "PUT", "PATCH"):
        return client.request(method, url, json={}, headers=headers)
    return client.request(method, url, headers=headers)


def test_the_app_has_the_routes_this_test_walks(app):
    operations = _operations(app)
    assert len(operations) >= 17
    for expected in [
        ("GET", "/v1/runs/{run_id}"),
        ("POST", "/v1/fits"),
        ("DELETE", "/v1/runs/{run_id}"),
    ]:
        assert expected in operations
    public = {(m, p) for m, p in operations if required_scope(m, p) is None}
    assert public == PUBLIC & set(operations)


def test_every_route_refuses_a_request_without_a_valid_key(keys, app):
    client, tokens = keys
    read_id = re.search(r"lck_([0-9a-f]{16})_", tokens["read"]).group(1)
    tampered = tokens["admin"][:-4] + ("AAAA" if not tokens["admin"].endswith("AAAA") else "BBBB")
    stolen_id = tokens["admin"].replace(
        re.search(r"lck_([0-9a-f]{16})_", tokens["admin"]).group(1), read_id
    )
    checked = 0
    for method, path in _operations(app):
        if (method, path) in PUBLIC:
            continue
        for token in (None, "not-a-key", tampered, stolen_id, "lck_" + "0" * 16 + "_" + "A" * 43):
            response = _call(client, method, path, token)
            assert response.status_code == 401, (method, path, token, response.text)
            body = response.json()
            assert body["detail"][0]["type"] == "unauthorized" and body["request_id"]
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        checked += 1
    assert checked >= 15


def test_every_route_needs_its_scope_and_no_more(keys, app):
    client, tokens = keys
    for method, path in _operations(app):
        needed = required_scope(method, path)
        if needed is None:
            continue
        for scope in SCOPES:
            status = _call(client, method, path, tokens[scope]).status_code
            if needed in GRANTS[scope]:
                assert status not in (401, 403), (method, path, scope, status)
            else:
                assert status == 403, (method, path, scope, status)


def test_public_routes_answer_without_a_key(keys):
    client, _ = keys
    assert client.get("/healthz").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_a_workflow_gets_its_2xx_with_keys_of_the_scopes_it_needs(keys):
    client, tokens = keys
    read, write, admin = ({"Authorization": f"Bearer {tokens[s]}"} for s in SCOPES)
    created = client.post("/v1/runs", json=SMALL_RUN, headers=write)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    assert client.get(f"/v1/runs/{run_id}", headers=read).status_code == 200
    assert client.get("/v1/runs", headers=read).json()["total"] == 1
    appended = client.post(
        f"/v1/runs/{run_id}/points", json={"step": [23900], "loss": [3.2]}, headers=write
    )
    assert appended.status_code == 200, appended.text
    assert client.delete(f"/v1/runs/{run_id}", headers=write).status_code == 403
    assert client.delete(f"/v1/runs/{run_id}", headers=admin).status_code == 204
    assert client.get(f"/v1/runs/{run_id}", headers=read).status_code == 404


def test_a_revoked_key_is_refused_and_the_service_stays_closed(keys, app):
    client, tokens = keys
    store = app.state.store
    for key in store.list_api_keys():
        store.revoke_api_key(key.id)
    for token in tokens.values():
        assert (
            client.get("/v1/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        )
    assert client.get("/v1/runs").status_code == 401  # revoking every key does not open it


def test_with_no_key_made_the_service_is_open(app):
    with TestClient(app) as client:
        created = client.post("/v1/runs", json=SMALL_RUN)
        assert created.status_code == 201
        assert client.delete(f"/v1/runs/{created.json()['id']}").status_code == 204
        # A token that is not a key is still refused, keys or not.
        assert client.get("/v1/runs", headers={"Authorization": "Bearer lck_x"}).status_code == 401


def test_public_reads_let_anyone_read_but_not_write(tmp_path):
    app = create_app(_settings(tmp_path, public_reads=True))
    with TestClient(app) as client:
        _, write = create_key(app.state.store, "writer", ["write"])
        assert client.get("/v1/runs").status_code == 200
        assert client.get("/v1/laws").status_code == 200
        assert client.post("/v1/runs", json=SMALL_RUN).status_code == 401
        headers = {"Authorization": f"Bearer {write}"}
        assert client.post("/v1/runs", json=SMALL_RUN, headers=headers).status_code == 201


def test_openapi_says_which_operations_need_a_key_as_it_stands(tmp_path):
    app = create_app(_settings(tmp_path, public_reads=True))
    with TestClient(app) as client:

        def security():
            paths = client.get("/openapi.json").json()["paths"]
            return {
                (method, path): paths[path][method].get("security")
                for path, method in [
                    ("/v1/runs", "post"),
                    ("/v1/runs", "get"),
                    ("/healthz", "get"),
                ]
            }

        scheme = client.get("/openapi.json").json()["components"]["securitySchemes"]
        assert scheme["HTTPBearer"]["type"] == "http" and scheme["HTTPBearer"]["scheme"] == "bearer"
        bearer, optional = [{"HTTPBearer": []}], [{}, {"HTTPBearer": []}]
        assert security() == {  # no key yet: a key is optional everywhere
            ("post", "/v1/runs"): optional,
            ("get", "/v1/runs"): optional,
            ("get", "/healthz"): [],
        }
        create_key(app.state.store, "writer", ["write"])
        assert security() == {  # reads stay public (LOSSCAST_PUBLIC_READS), writes need one
            ("post", "/v1/runs"): bearer,
            ("get", "/v1/runs"): optional,
            ("get", "/healthz"): [],
        }
        healthz = client.get("/openapi.json").json()["paths"]["/healthz"]["get"]["responses"]
        assert "401" not in healthz and "403" not in healthz


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "losscast.example.org"])
def test_a_non_loopback_address_with_no_keys_refuses_to_start(tmp_path, host):
    app = create_app(_settings(tmp_path, host=host))
    with pytest.raises(OpenExposure, match=f"refusing to listen on {re.escape(host)}"):
        with TestClient(app):
            pass


def test_a_non_loopback_address_starts_with_a_key_or_when_anonymous_is_asked_for(tmp_path):
    with TestClient(create_app(_settings(tmp_path, host="0.0.0.0", allow_anonymous=True))) as c:
        assert c.get("/v1/runs").status_code == 200
    keyed = create_app(_settings(tmp_path, host="0.0.0.0"))
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    assert main(["keys", "create", "--name", "ops", "--scope", "read", "--database-url", url]) == 0
    with TestClient(keyed) as client:
        assert client.get("/v1/runs").status_code == 401
    for host in ("127.0.0.1", "::1", "localhost"):
        with TestClient(create_app(_settings(tmp_path / host, host=host))) as client:
            assert client.get("/v1/runs").status_code == 200


def test_losscast_keys_create_list_revoke(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    assert main(["keys", "list", "--database-url", url]) == 0
    assert "no API keys" in capsys.readouterr().out
    assert (
        main(["keys", "create", "--name", "trainer", "--scope", "write", "--database-url", url])
        == 0
    )
    out = capsys.readouterr()
    token = out.out.strip()
    key_id = re.fullmatch(r"lck_([0-9a-f]{16})_[A-Za-z0-9_-]{43}", token).group(1)
    assert "shown this once" in out.err and token not in out.err
    assert main(["keys", "list", "--json", "--database-url", url]) == 0
    listed = capsys.readouterr().out
    assert token not in listed and token.split("_")[-1] not in listed
    app = create_app(_settings(tmp_path))
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.post("/v1/runs", json=SMALL_RUN, headers=headers).status_code == 201
        assert main(["keys", "revoke", key_id, "--database-url", url]) == 0
        assert f"key {key_id} ('trainer') revoked" in capsys.readouterr().out
        assert client.post("/v1/runs", json=SMALL_RUN, headers=headers).status_code == 401
    assert main(["keys", "revoke", "nope", "--database-url", url]) == 2
    assert "not found" in capsys.readouterr().err
    stored = app.state.store.list_api_keys()
    assert [(k.id, k.scopes, k.revoked_at is not None) for k in stored] == [
        (key_id, ["write"], True)
    ]
    assert all(token not in repr(k) for k in stored)  # only the hash is kept


def test_the_cli_sends_the_key_in_losscast_api_key(keys, monkeypatch):
    from losscast_cli import main as cli

    client, tokens = keys
    monkeypatch.setenv("LOSSCAST_API_KEY", tokens["read"])
    sent = dict(cli.Service("http://testserver", 5).client.headers)
    assert sent["authorization"] == f"Bearer {tokens['read']}"
    assert (
        client.get("/v1/runs", headers={"Authorization": sent["authorization"]}).status_code == 200
    )
    monkeypatch.delenv("LOSSCAST_API_KEY")
    assert "authorization" not in cli.Service("http://testserver", 5).client.headers
