// The official Node SDK (`mixpanel` on npm) as a client of tierd: every way it sends events.
//
// Run by tests/tests/mixpanel_sdks.rs as `node mixpanel_node.js HOST:PORT N TIME0_MS`. Prints one JSON object: the
// SDK's version and the number of events sent per event name. Exits 3, naming the missing package, when the SDK is
// not installed; exits 1 when any call fails.
"use strict";

let Mixpanel;
try {
  Mixpanel = require("mixpanel");
} catch (e) {
  console.error(`the npm package \`mixpanel\` cannot be loaded (NODE_PATH=${process.env.NODE_PATH}): ${e.message}`);
  process.exit(3);
}
const version = require("mixpanel/package.json").version;

const [host, nText, time0Text] = process.argv.slice(2);
const n = Number(nText);
const time0 = Number(time0Text);
const TOKEN = "tok-web";
// `key` only satisfies the SDK's check that /import has credentials (a secret would require HTTPS); tierd ignores
// it until credentials come.
const config = { host, protocol: "http", key: "legacy-api-key", logger: { ...console, warn() {} } };
const plain = Mixpanel.init(TOKEN, config);
const verbose = Mixpanel.init(TOKEN, { ...config, verbose: true });

// Node-style callbacks as promises; a batch call's callback gets an array of errors (or null).
const call = (f) => new Promise((resolve, reject) => f((err) => (err ? reject(err) : resolve())));

async function main() {
  const sent = {};
  // `track`: one event, base64, in a GET query; without verbose the daemon must answer exactly `1`. No time, no
  // $insert_id: the daemon fills both in.
  for (let i = 0; i < n; i++) {
    const client = i % 2 ? verbose : plain;
    await call((cb) => client.track("node track", { distinct_id: `node-${i}`, i }, cb));
  }
  sent["node track"] = n;
  // `import`: one event with its time (a Date, sent in ms), base64, in a GET query to /import.
  for (let i = 0; i < n; i++) {
    await call((cb) => plain.import("node import", new Date(time0 + i * 1000), { distinct_id: `node-${i}`, i }, cb));
  }
  sent["node import"] = n;
  // `track_batch` and `import_batch`: POSTed forms of base64 arrays of up to 50 events (the `+` of base64 not
  // percent-encoded: the daemon reads them back from spaces).
  const events = (name) =>
    Array.from({ length: n }, (_, i) => ({
      event: name,
      properties: { distinct_id: `nodeb-${i}`, time: time0 + i * 1000, i, text: "a+b/c?=" },
    }));
  await call((cb) => plain.track_batch(events("node track_batch"), cb));
  sent["node track_batch"] = n;
  await call((cb) => verbose.import_batch(events("node import_batch"), cb));
  sent["node import_batch"] = n;
  // Profile updates are refused, loudly.
  const refused = await call((cb) => plain.people.set("node-0", "plan", "pro", cb)).then(
    () => null,
    (err) => err,
  );
  if (!refused || !String(refused.message).includes("tierd stores events, not profiles")) {
    throw new Error(`people.set should have failed with tierd's message, got ${refused}`);
  }
  console.log(JSON.stringify({ version, sent }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
