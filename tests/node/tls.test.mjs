// Permify's official Node client over TLS, as a Permify user connects to a server whose gRPC
// port has `server.grpc.tls` on: `newClient({ cert, insecure: false })`, `cert` being the CA
// certificate to trust.
// LOOKOUT_GRPC_TLS=host:port names the server; LOOKOUT_GRPC_CA is the CA's PEM file (the Rust
// e2e test starts the server and sets both).
import { readFileSync } from "node:fs";
import { test } from "node:test";
import assert from "node:assert/strict";
import * as permify from "@permify/permify-node";

const endpoint = process.env.LOOKOUT_GRPC_TLS;
const ca = readFileSync(process.env.LOOKOUT_GRPC_CA);
const client = permify.grpc.newClient({ endpoint, cert: ca, pk: null, certChain: null, insecure: false });
const { CheckResult } = permify.grpc.base;
const tenantId = `node-tls-${process.pid}-${Date.now()}`;
const schema = readFileSync(new URL("../clients.perm", import.meta.url), "utf8");

const user = (id) => ({ type: "user", id, relation: "" });
const doc = (id) => ({ type: "document", id });
// A failing call gives up after this long instead of waiting for the channel.
const deadline = () => ({ deadline: new Date(Date.now() + 10000) });
// Refused at the connection: UNAVAILABLE (14), not a deadline.
const unavailable = (e) => {
  assert.equal(e.code, 14, String(e));
  return true;
};

test("over TLS: create a tenant, write schema and data, check", async () => {
  await client.tenancy.create({ id: tenantId, name: "node tls" });
  const written = await client.schema.write({ tenantId, schema });
  assert.ok(written.schemaVersion.length > 0);
  const data = await client.data.write({
    tenantId,
    metadata: { schemaVersion: "" },
    tuples: [{ entity: doc("1"), relation: "owner", subject: user("alice") }],
    attributes: [],
  });
  const check = async (subject) =>
    (await client.permission.check({
      tenantId,
      metadata: { snapToken: data.snapToken, schemaVersion: "", depth: 20 },
      entity: doc("1"),
      permission: "edit",
      subject,
    })).can;
  assert.equal(await check(user("alice")), CheckResult.CHECK_RESULT_ALLOWED);
  assert.equal(await check(user("bob")), CheckResult.CHECK_RESULT_DENIED);
});

test("over TLS: a client that does not trust the certificate is refused", async () => {
  const untrusting = permify.grpc.newClient({ endpoint, cert: null, pk: null, certChain: null, insecure: false });
  await assert.rejects(untrusting.tenancy.list({ pageSize: 1, continuousToken: "" }, deadline()), unavailable);
});

test("over TLS: a plaintext client is refused", async () => {
  const plaintext = permify.grpc.newClient({ endpoint, cert: null, pk: null, certChain: null, insecure: true });
  await assert.rejects(plaintext.tenancy.list({ pageSize: 1, continuousToken: "" }, deadline()), unavailable);
});
