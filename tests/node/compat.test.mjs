// Permify's official Node client against a running Lookout server.
// LOOKOUT_GRPC=host:port names the server (the Rust e2e test starts one and sets it).
import { readFileSync } from "node:fs";
import { test } from "node:test";
import assert from "node:assert/strict";
import * as permify from "@permify/permify-node";

const endpoint = process.env.LOOKOUT_GRPC ?? "127.0.0.1:3478";
const client = permify.grpc.newClient({ endpoint, cert: undefined, insecure: true, timeout: 10000 });
const { CheckResult, BooleanValue, DataChange_Operation } = permify.grpc.base;
const tenantId = `node-${process.pid}-${Date.now()}`;

// The schema the Python client's test uses too.
const schema = readFileSync(new URL("../clients.perm", import.meta.url), "utf8");

const user = (id) => ({ type: "user", id, relation: "" });
const doc = (id) => ({ type: "document", id });
const tuple = (docId, relation, subject) => ({ entity: doc(docId), relation, subject });
const bool = (data) => ({
  typeUrl: "type.googleapis.com/base.v1.BooleanValue",
  value: BooleanValue.encode({ data }).finish(),
});

let snapToken = "";

test("tenancy: create and list", async () => {
  const created = await client.tenancy.create({ id: tenantId, name: "node compat" });
  assert.equal(created.tenant.id, tenantId);
  const listed = await client.tenancy.list({ pageSize: 100, continuousToken: "" });
  assert.ok(listed.tenants.some((t) => t.id === tenantId), "created tenant is listed");
});

test("schema: write and read", async () => {
  const written = await client.schema.write({ tenantId, schema });
  assert.ok(written.schemaVersion.length > 0);
  const read = await client.schema.read({ tenantId, metadata: { schemaVersion: written.schemaVersion } });
  assert.deepEqual(Object.keys(read.schema.entityDefinitions).sort(), ["document", "group", "user"]);
  assert.ok("view" in read.schema.entityDefinitions.document.permissions);
});

test("data: write tuples and attributes, then check", async () => {
  const tuples = [
    tuple("1", "owner", user("alice")),
    tuple("2", "viewer", user("bob")),
    { entity: { type: "group", id: "eng" }, relation: "member", subject: user("carol") },
    tuple("3", "viewer", { type: "group", id: "eng", relation: "member" }),
  ];
  for (let i = 10; i < 15; i++) tuples.push(tuple(String(i), "viewer", user("dave")));
  const written = await client.data.write({
    tenantId,
    metadata: { schemaVersion: "" },
    tuples,
    attributes: [{ entity: doc("4"), attribute: "public", value: bool(true) }],
  });
  assert.ok(written.snapToken.length > 0);
  snapToken = written.snapToken;

  const check = async (docId, permission, subject) =>
    (await client.permission.check({
      tenantId,
      metadata: { snapToken, schemaVersion: "", depth: 20 },
      entity: doc(docId),
      permission,
      subject,
    })).can;
  assert.equal(await check("1", "edit", user("alice")), CheckResult.CHECK_RESULT_ALLOWED);
  assert.equal(await check("1", "edit", user("bob")), CheckResult.CHECK_RESULT_DENIED);
  assert.equal(await check("3", "view", user("carol")), CheckResult.CHECK_RESULT_ALLOWED);
  assert.equal(await check("4", "view", user("nobody")), CheckResult.CHECK_RESULT_ALLOWED);
});

test("lookup entity: pages cover every id once", async () => {
  const seen = [];
  let continuousToken = "";
  for (let page = 0; page < 10; page++) {
    const res = await client.permission.lookupEntity({
      tenantId,
      metadata: { snapToken, schemaVersion: "", depth: 20 },
      entityType: "document",
      permission: "view",
      subject: user("dave"),
      pageSize: 2,
      continuousToken,
    });
    seen.push(...res.entityIds);
    continuousToken = res.continuousToken;
    if (!continuousToken) break;
  }
  assert.deepEqual([...seen].sort(), ["10", "11", "12", "13", "14", "4"].sort());
  assert.equal(new Set(seen).size, seen.length, "no id twice");
});

test("lookup entity stream: resume after message k yields exactly the rest", async () => {
  const request = (continuousToken) => ({
    tenantId,
    metadata: { snapToken, schemaVersion: "", depth: 20 },
    entityType: "document",
    permission: "view",
    subject: user("dave"),
    pageSize: 0,
    continuousToken,
  });
  const all = [];
  for await (const msg of client.permission.lookupEntityStream(request(""))) all.push(msg);
  assert.equal(all.length, 6);
  const k = 2;
  const rest = [];
  for await (const msg of client.permission.lookupEntityStream(request(all[k - 1].continuousToken))) {
    rest.push(msg.entityId);
  }
  assert.deepEqual(rest, all.slice(k).map((m) => m.entityId));
});

test("lookup subject and subject permission", async () => {
  const subjects = await client.permission.lookupSubject({
    tenantId,
    metadata: { snapToken, schemaVersion: "", depth: 20 },
    entity: doc("3"),
    permission: "view",
    subjectReference: { type: "user", relation: "" },
    pageSize: 0,
    continuousToken: "",
  });
  assert.deepEqual(subjects.subjectIds, ["carol"]);

  const perms = await client.permission.subjectPermission({
    tenantId,
    metadata: { snapToken, schemaVersion: "", onlyPermission: true, depth: 20 },
    entity: doc("1"),
    subject: user("alice"),
  });
  assert.equal(perms.results.edit, CheckResult.CHECK_RESULT_ALLOWED);
  assert.equal(perms.results.view, CheckResult.CHECK_RESULT_ALLOWED);
});

test("watch sees a write and a delete, and the delete revokes", async () => {
  const controller = new AbortController();
  const stream = client.watch.watch({ tenantId, snapToken }, { signal: controller.signal });
  // Watching from a snap token replays every change after it, so the write and the delete
  // below are seen however late the subscription starts.
  const received = (async () => {
    const messages = [];
    for await (const msg of stream) {
      messages.push(msg);
      if (messages.length === 2) break;
    }
    return messages;
  })();
  const checkErin = async (token) =>
    (await client.permission.check({
      tenantId,
      metadata: { snapToken: token, schemaVersion: "", depth: 20 },
      entity: doc("99"),
      permission: "view",
      subject: user("erin"),
    })).can;

  const written = await client.data.write({
    tenantId,
    metadata: { schemaVersion: "" },
    tuples: [tuple("99", "viewer", user("erin"))],
    attributes: [],
  });
  assert.equal(await checkErin(written.snapToken), CheckResult.CHECK_RESULT_ALLOWED);
  const deleted = await client.data.delete({
    tenantId,
    tupleFilter: { entity: { type: "document", ids: ["99"] }, relation: "viewer", subject: undefined },
    attributeFilter: undefined,
  });
  assert.ok(deleted.snapToken.length > 0);
  assert.notEqual(deleted.snapToken, written.snapToken);
  assert.equal(await checkErin(deleted.snapToken), CheckResult.CHECK_RESULT_DENIED);

  const [create, remove] = await received;
  controller.abort();
  const only = (msg, token) => {
    assert.equal(msg.changes.snapToken, token);
    assert.equal(msg.changes.dataChanges.length, 1);
    return msg.changes.dataChanges[0];
  };
  const isErinTuple = (change) => {
    // The client models the `type` oneof as a tagged union.
    assert.equal(change.type?.$case, "tuple");
    assert.equal(change.type.tuple.entity.type, "document");
    assert.equal(change.type.tuple.entity.id, "99");
    assert.equal(change.type.tuple.relation, "viewer");
    assert.equal(change.type.tuple.subject.id, "erin");
  };
  const created = only(create, written.snapToken);
  assert.equal(created.operation, DataChange_Operation.OPERATION_CREATE);
  isErinTuple(created);
  const removed = only(remove, deleted.snapToken);
  assert.equal(removed.operation, DataChange_Operation.OPERATION_DELETE);
  isErinTuple(removed);
});

test("tenancy: delete", async () => {
  await client.tenancy.delete({ id: tenantId });
  const listed = await client.tenancy.list({ pageSize: 100, continuousToken: "" });
  assert.ok(!listed.tenants.some((t) => t.id === tenantId));
});
