"""Small helpers the tests share."""
from __future__ import annotations

import html
import re
import time

CSRF_FIELD = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def wait_until(predicate, timeout: float = 20, interval: float = 0.1, message: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}; last value: {value!r}")
        time.sleep(interval)


def read_request(conn) -> bytes:
    """Read one HTTP request from a raw socket, headers and Content-Length body, and return it whole
    (what a hand-written receiver reads before it misbehaves)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def csrf_token(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no CSRF token field"
    return match.group(1) or match.group(2)


class ApiClient:
    """The Flask test client, authenticated with an API key, speaking JSON."""

    def __init__(self, client, api_key: str):
        self.client = client
        self.api_key = api_key

    def _headers(self, headers=None) -> dict:
        return {"Authorization": f"Bearer {self.api_key}", **(headers or {})}

    def get(self, path, **kwargs):
        return self.client.get(path, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.client.post(path, json=json if json is not None else {},
                                headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def patch(self, path, json=None, **kwargs):
        return self.client.patch(path, json=json or {}, headers=self._headers(kwargs.pop("headers", None)), **kwargs)

    def delete(self, path, **kwargs):
        return self.client.delete(path, headers=self._headers(kwargs.pop("headers", None)), **kwargs)


# --- the API steps most delivery tests take -------------------------------------------------

def make_agent(api, name="Support bot"):
    response = api.post("/api/v1/agents", json={"name": name, "description": "answers tickets"})
    assert response.status_code == 201, response.json
    return response.json


def make_endpoint(api, url, **fields):
    response = api.post("/api/v1/endpoints", json={"url": url, **fields})
    assert response.status_code == 201, response.json
    endpoint = response.json
    endpoint["secret"] = api.get(f"/api/v1/endpoints/{endpoint['id']}/secret").json["secret"]
    return endpoint


def send(api, agent_id, type_="message.received", **fields):
    response = api.post("/api/v1/events", json={"type": type_, "agent_id": agent_id, **fields})
    assert response.status_code == 202, response.json
    return response.json


def delivery_of(api, event_id, index=0):
    return api.get(f"/api/v1/events/{event_id}").json["deliveries"][index]


def wait_for_status(api, delivery_id, status, timeout=20):
    return wait_until(lambda: (d := api.get(f"/api/v1/deliveries/{delivery_id}").json)["status"] == status and d,
                      timeout=timeout, message=f"delivery {delivery_id} to be {status}")


def login(client, email, password="correct horse battery"):
    """Log in through the real form (a tenant made by the make_tenant fixture has owner<N>@example.com)."""
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)


def check_two_pages(client, path: str, listed, expected: list, first_label="Newest", next_label="Older"):
    """Check a list of 101 to 200 rows, 100 a page: its first page lists ``expected[:100]`` (``listed`` reads a
    page's rows) and no link back, the next the rest, a link back and none further; a cursor that is not ours
    lands on the first page, saying so. Returns the two pages and the next page's URL."""
    first = client.get(path).get_data(as_text=True)
    following = html.unescape(re.search(rf'href="([^"]+)">{next_label}</a>', first).group(1))
    second = client.get(following).get_data(as_text=True)
    assert listed(first) == expected[:100] and f">{first_label}</a>" not in first
    assert listed(second) == expected[100:] and f">{next_label}</a>" not in second
    assert f'href="{path}">{first_label}</a>' in second
    response = client.get(f"{path}?cursor=nonsense", follow_redirects=True)
    assert response.request.path == path and "does not exist" in response.get_data(as_text=True)
    assert listed(response.get_data(as_text=True)) == expected[:100]
    return first, following, second
