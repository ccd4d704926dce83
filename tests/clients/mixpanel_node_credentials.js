// The official Node SDK (`mixpanel` on npm) importing with credentials, which it sends over HTTPS only.
//
// Run by tests/tests/tls.rs as `node mixpanel_node_credentials.js HOST PORT N TIME0_MS`, against a tierd serving
// HTTPS whose CA is in NODE_EXTRA_CA_CERTS, with project `web` (token tok-web, id 1001, secret web-secret, service
// account sa-web / sa-web-pw) and project `app` configured. Prints one JSON object: the SDK's version and the
// events sent per event name. Exits 3 when the SDK is not installed; exits 1 when a call that should succeed fails
// or one that should fail succeeds.
"use strict";

let Mixpanel;
try {
  Mixpanel = require("mixpanel");
} catch (e) {
  console.error(`the npm package \`mixpanel\` cannot be loaded (NODE_PATH=${process.env.NODE_PATH}): ${e.message}`);
  process.exit(3);
}
const version = require("mixpanel/package.json").version;
const { ServiceAccountCredentials } = Mixpanel;

const [host, portText, nText, time0Text] = process.argv.slice(2);
const n = Number(nText);
const time0 = Number(time0Text);
const TOKEN = "tok-web";
const base = { host, port: Number(portText), protocol: "https", logger: { ...console, warn() {} } };

const call = (f) => new Promise((resolve, reject) => f((err) => (err ? reject(err) : resolve())));
const refused = async (what, f, needle) => {
  const err = await call(f).then(
    () => null,
    (e) => e,
  );
  if (!err) throw new Error(`${what}: should have been refused`);
  if (!String(err.message).includes(needle)) throw new Error(`${what}: expected "${needle}" in: ${err.message}`);
};

async function main() {
  const sent = {};
  // New clients: a service account and the project id (HTTP Basic, ?project_id=).
  const account = Mixpanel.init(TOKEN, {
    ...base,
    credentials: new ServiceAccountCredentials("sa-web", "sa-web-pw", "1001"),
  });
  for (let i = 0; i < n; i++) {
    await call((cb) => account.import("node tls service account", new Date(time0 + i * 1000), { distinct_id: `sa-${i}` }, cb));
  }
  sent["node tls service account"] = n;
  // Old clients: the project secret as the HTTP Basic user name; a batch of more than one request's 50 events.
  const legacy = Mixpanel.init(TOKEN, { ...base, secret: "web-secret" });
  const events = Array.from({ length: n }, (_, i) => ({
    event: "node tls secret batch",
    properties: { distinct_id: `secret-${i}`, time: time0 + i * 1000 },
  }));
  await call((cb) => legacy.import_batch(events, cb));
  sent["node tls secret batch"] = n;
  // `track` over HTTPS: the token routes the events, no secret needed.
  for (let i = 0; i < n; i++) {
    await call((cb) => legacy.track("node tls track", { distinct_id: `track-${i}` }, cb));
  }
  sent["node tls track"] = n;

  // Refusals, verbose so that the SDK reports tierd's reason (without it the answer is `0`).
  const wrong = Mixpanel.init(TOKEN, { ...base, verbose: true, secret: "not-the-secret" });
  await refused("a wrong secret", (cb) => wrong.import("refused", new Date(time0), { distinct_id: "x" }, cb), "wrong project secret");
  const other = Mixpanel.init(TOKEN, {
    ...base,
    verbose: true,
    credentials: new ServiceAccountCredentials("sa-web", "sa-web-pw", "app"),
  });
  await refused("another project", (cb) => other.import("refused", new Date(time0), { distinct_id: "x" }, cb), "may not write");
  console.log(JSON.stringify({ version, sent }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
