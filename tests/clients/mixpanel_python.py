"""The official Python SDK (`mixpanel` on PyPI) as a client of tierd: every way it sends events.

Run by tests/tests/mixpanel_sdks.rs as `python3 mixpanel_python.py BASE_URL N TIME0`. Prints one JSON object:
the SDK's version and the number of events sent per event name. Exits 3, naming the missing package, when the SDK
is not installed; raises (exit 1) when any call fails.
"""
import json
import sys

try:
    import mixpanel
    from mixpanel import BufferedConsumer, Consumer, Mixpanel, MixpanelException
except ImportError as e:
    print(f"the Python package `mixpanel` is not importable by {sys.executable}: {e}", file=sys.stderr)
    sys.exit(3)

base, n, time0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
TOKEN = "tok-web"
urls = {"events_url": f"{base}/track", "import_url": f"{base}/import", "people_url": f"{base}/engage",
        "groups_url": f"{base}/groups", "request_timeout": 30}
sent = {}

# One request per call: `track` posts a form (data = one event as JSON, verbose=1, ip=0) to /track.
mp = Mixpanel(TOKEN, consumer=Consumer(**urls))
for i in range(n):
    mp.track(f"py-{i}", "py track", {"i": i, "plan": "pro" if i % 2 else "free"})
sent["py track"] = n

# `import_data` posts the same form to /import, with an event time in seconds (here in the past, as it is for).
for i in range(n):
    mp.import_data("legacy-api-key", f"py-{i}", "py import", time0 + i, {"i": i})
sent["py import"] = n

# The buffered consumer sends arrays of up to 50 events per request, to both endpoints.
buffered = BufferedConsumer(max_size=50, **urls)
mpb = Mixpanel(TOKEN, consumer=buffered)
for i in range(n):
    mpb.track(f"pyb-{i}", "py track batch", {"i": i})
    mpb.import_data("legacy-api-key", f"pyb-{i}", "py import batch", time0 + i, {"i": i})
buffered.flush()
sent["py track batch"] = n
sent["py import batch"] = n

# Profile updates are refused, loudly: the SDK raises the daemon's error.
try:
    mp.people_set("py-0", {"plan": "pro"})
except MixpanelException as e:
    if "tierd stores events, not profiles" not in str(e):
        raise
else:
    raise AssertionError("people_set should have failed")

print(json.dumps({"version": mixpanel.__version__, "sent": sent}))
