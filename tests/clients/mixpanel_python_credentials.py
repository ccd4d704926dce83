"""The official Python SDK (`mixpanel` on PyPI) against a tierd whose projects have /import credentials.

Run by tests/tests/mixpanel_sdks.rs as `python3 mixpanel_python_credentials.py BASE_URL N TIME0`, with project
`web` (token tok-web, id 1001, secret web-secret, service account sa-web / sa-web-pw) configured. Prints one JSON
object: the number of events sent per event name. Exits 3 when the SDK is not installed; raises (exit 1) when a
call that should succeed fails, or one that should fail succeeds.
"""
import json
import sys

try:
    from mixpanel import Consumer, Mixpanel, MixpanelException, ServiceAccountCredentials
except ImportError as e:
    print(f"the Python package `mixpanel` is not importable by {sys.executable}: {e}", file=sys.stderr)
    sys.exit(3)

base, n, time0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
TOKEN = "tok-web"
urls = {"events_url": f"{base}/track", "import_url": f"{base}/import", "request_timeout": 30}
sent = {}

# New clients: a service account and the project id (HTTP Basic, ?project_id=).
credentials = ServiceAccountCredentials(username="sa-web", secret="sa-web-pw", project_id="1001")
mp = Mixpanel(TOKEN, consumer=Consumer(credentials=credentials, **urls))
for i in range(n):
    mp.import_data(None, f"sa-{i}", "py import service account", time0 + i, {"i": i})
sent["py import service account"] = n

# Old clients: the project secret as the HTTP Basic user name.
legacy = Mixpanel(TOKEN, consumer=Consumer(**urls))
for i in range(n):
    legacy.import_data(None, f"secret-{i}", "py import secret", time0 + i, {"i": i}, api_secret="web-secret")
sent["py import secret"] = n

# /track needs no secret: the token routes the events.
for i in range(n):
    legacy.track(f"track-{i}", "py track", {"i": i})
sent["py track"] = n


def refused(call, needle):
    try:
        call()
    except MixpanelException as e:
        if needle not in str(e):
            raise AssertionError(f"expected {needle!r} in {e}") from e
        return
    raise AssertionError(f"should have been refused ({needle})")


refused(lambda: legacy.import_data(None, "x", "refused", time0, {}, api_secret="not-the-secret"), "wrong project secret")
refused(lambda: legacy.import_data(None, "x", "refused", time0, {}), "needs a credential")
wrong = ServiceAccountCredentials(username="sa-web", secret="wrong", project_id="1001")
refused(lambda: Mixpanel(TOKEN, consumer=Consumer(credentials=wrong, **urls)).import_data(None, "x", "refused", time0, {}),
        "wrong service account")
other = ServiceAccountCredentials(username="sa-web", secret="sa-web-pw", project_id="app")
refused(lambda: Mixpanel(TOKEN, consumer=Consumer(credentials=other, **urls)).import_data(None, "x", "refused", time0, {}),
        "may not write")

print(json.dumps({"sent": sent}))
