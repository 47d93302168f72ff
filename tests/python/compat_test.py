"""Permify's official Python client (`permify` on PyPI) against a running Lookout server.

The client speaks Permify's HTTP/JSON API and parses every answer into strict pydantic models,
so a field of the wrong name or type, or an enum value it does not know, fails here.
LOOKOUT_HTTP=http://host:port names the server (the Rust e2e test starts one and sets it).
"""
import os
import time
from pathlib import Path
import unittest
import warnings

import permify
from permify.exceptions import ApiException
from permify.models import (
    Any,
    Attribute,
    AttributeFilter,
    BulkCheckBody,
    BundleDeleteBody,
    BundleReadBody,
    BundleWriteBody,
    CheckBody,
    CheckResult,
    Context,
    DataBundle,
    DataDeleteBody,
    DataWriteBody,
    DataWriteRequestMetadata,
    Entity,
    EntityFilter,
    LookupEntityBody,
    LookupEntityStreamBody,
    LookupSubjectBody,
    PermissionBulkCheckRequestItem,
    PermissionCheckRequestMetadata,
    PermissionExpandBody,
    PermissionExpandRequestMetadata,
    PermissionLookupEntityRequestMetadata,
    PermissionLookupSubjectRequestMetadata,
    PermissionSubjectPermissionRequestMetadata,
    ReadAttributesBody,
    ReadRelationshipsBody,
    RelationReference,
    RelationshipReadRequestMetadata,
    AttributeReadRequestMetadata,
    RunBundleBody,
    SchemaListBody,
    SchemaReadBody,
    SchemaReadRequestMetadata,
    SchemaWriteBody,
    SubjectFilter,
    SubjectPermissionBody,
    Subject,
    TenantCreateRequest,
    TenantListRequest,
    Tuple,
    TupleFilter,
    V1Operation,
)

# The client's `Any` model warns when it serializes the value of an attribute (it sends it
# right all the same).
warnings.filterwarnings("ignore", message="Pydantic serializer warnings")

ENDPOINT = os.environ.get("LOOKOUT_HTTP", "http://127.0.0.1:3476")
TENANT = f"py-{os.getpid()}-{int(time.time())}"

# The schema the Node client's test uses too.
SCHEMA = (Path(__file__).parent.parent / "clients.perm").read_text()

ALLOWED = CheckResult.CHECK_RESULT_ALLOWED
DENIED = CheckResult.CHECK_RESULT_DENIED


def user(id_):
    return Subject(type="user", id=id_)


def doc(id_):
    return Entity(type="document", id=id_)


def pages(fetch, most=10):
    """Every item of a paged listing; `fetch(token)` answers (items, next token)."""
    items, token = [], ""
    for _ in range(most):
        page, token = fetch(token)
        items += page
        if not token:
            return items
    raise AssertionError(f"the listing did not end within {most} pages")


def boolean(value):
    return Any.from_dict({"@type": "type.googleapis.com/base.v1.BooleanValue", "data": value})


class Compat(unittest.TestCase):
    """The steps share one tenant and run in order (unittest sorts them by name)."""

    snap_token = ""

    @classmethod
    def setUpClass(cls):
        client = permify.ApiClient(permify.Configuration(host=ENDPOINT))
        cls.tenancy = permify.TenancyApi(client)
        cls.schema = permify.SchemaApi(client)
        cls.data = permify.DataApi(client)
        cls.permission = permify.PermissionApi(client)
        cls.bundle = permify.BundleApi(client)

    def check(self, entity, permission, subject, context=None):
        metadata = PermissionCheckRequestMetadata(snap_token=Compat.snap_token, depth=20)
        return self.permission.permissions_check(
            TENANT,
            CheckBody(metadata=metadata, entity=entity, permission=permission,
                      subject=subject, context=context),
        ).can

    def test_01_tenancy(self):
        created = self.tenancy.tenants_create(TenantCreateRequest(id=TENANT, name="python"))
        self.assertEqual(created.tenant.id, TENANT)
        self.assertIsNotNone(created.tenant.created_at)
        listed = self.tenancy.tenants_list(TenantListRequest(page_size=100))
        self.assertIn(TENANT, [t.id for t in listed.tenants])

    def test_02_schema(self):
        written = self.schema.schemas_write(TENANT, SchemaWriteBody(schema=SCHEMA))
        self.assertTrue(written.schema_version)
        read = self.schema.schemas_read(
            TENANT,
            SchemaReadBody(metadata=SchemaReadRequestMetadata(
                schema_version=written.schema_version)),
        )
        # The client's model names the entity map `entityDefinitions`, as Permify's OpenAPI
        # did; Permify's server (and Lookout) send `entity_definitions`, so only the
        # references reach the model.
        self.assertEqual(sorted(read.var_schema.references), ["document", "group", "user"])
        versions = self.schema.schemas_list(TENANT, SchemaListBody(page_size=10))
        self.assertEqual(versions.head, written.schema_version)

    def test_03_data_write_and_check(self):
        tuples = [
            Tuple(entity=doc("1"), relation="owner", subject=user("alice")),
            Tuple(entity=doc("2"), relation="viewer", subject=user("bob")),
            Tuple(entity=Entity(type="group", id="eng"), relation="member",
                  subject=user("carol")),
            Tuple(entity=doc("3"), relation="viewer",
                  subject=Subject(type="group", id="eng", relation="member")),
        ]
        tuples += [Tuple(entity=doc(str(i)), relation="viewer", subject=user("dave"))
                   for i in range(10, 15)]
        written = self.data.data_write(TENANT, DataWriteBody(
            metadata=DataWriteRequestMetadata(schema_version=""),
            tuples=tuples,
            attributes=[Attribute(entity=doc("4"), attribute="public", value=boolean(True))],
        ))
        self.assertTrue(written.snap_token)
        Compat.snap_token = written.snap_token

        self.assertEqual(self.check(doc("1"), "edit", user("alice")), ALLOWED)
        self.assertEqual(self.check(doc("1"), "edit", user("bob")), DENIED)
        self.assertEqual(self.check(doc("3"), "view", user("carol")), ALLOWED)
        self.assertEqual(self.check(doc("4"), "view", user("nobody")), ALLOWED)
        # A contextual tuple counts for this call only.
        context = Context(tuples=[Tuple(entity=doc("5"), relation="viewer", subject=user("eve"))])
        self.assertEqual(self.check(doc("5"), "view", user("eve"), context), ALLOWED)
        self.assertEqual(self.check(doc("5"), "view", user("eve")), DENIED)

    def test_04_bulk_check(self):
        items = [
            PermissionBulkCheckRequestItem(entity=doc("1"), permission="edit", subject=user(u))
            for u in ("alice", "bob")
        ]
        answer = self.permission.permissions_bulk_check(TENANT, BulkCheckBody(
            metadata=PermissionCheckRequestMetadata(snap_token=Compat.snap_token, depth=20),
            items=items,
        ))
        self.assertEqual([r.can for r in answer.results], [ALLOWED, DENIED])

    def test_05_lookup_entity_pages(self):
        def fetch(token):
            page = self.permission.permissions_lookup_entity(TENANT, LookupEntityBody(
                metadata=PermissionLookupEntityRequestMetadata(
                    snap_token=Compat.snap_token, depth=20),
                entity_type="document",
                permission="view",
                subject=user("dave"),
                page_size=2,
                continuous_token=token,
            ))
            self.assertLessEqual(len(page.entity_ids), 2)
            return page.entity_ids, page.continuous_token

        seen = pages(fetch)
        self.assertEqual(sorted(seen), sorted(["4", "10", "11", "12", "13", "14"]))
        self.assertEqual(len(set(seen)), len(seen), "no id twice")

    def test_06_lookup_entity_stream(self):
        # The client reads a streamed answer as one JSON document, which works when the stream
        # has one message: alice may edit document 1 only.
        answer = self.permission.permissions_lookup_entity_stream(TENANT, LookupEntityStreamBody(
            metadata=PermissionLookupEntityRequestMetadata(
                snap_token=Compat.snap_token, depth=20),
            entity_type="document",
            permission="edit",
            subject=user("alice"),
        ))
        self.assertIsNone(answer.error)
        self.assertEqual(answer.result.entity_id, "1")
        self.assertTrue(answer.result.continuous_token)

    def test_07_lookup_subject_and_subject_permission(self):
        answer = self.permission.permissions_lookup_subject(TENANT, LookupSubjectBody(
            metadata=PermissionLookupSubjectRequestMetadata(
                snap_token=Compat.snap_token, depth=20),
            entity=doc("3"),
            permission="view",
            subject_reference=RelationReference(type="user"),
        ))
        self.assertEqual(answer.subject_ids, ["carol"])
        results = self.permission.permissions_subject_permission(TENANT, SubjectPermissionBody(
            metadata=PermissionSubjectPermissionRequestMetadata(
                snap_token=Compat.snap_token, depth=20),
            entity=doc("1"),
            subject=user("alice"),
        )).results
        self.assertEqual(results["edit"], ALLOWED)
        self.assertEqual(results["view"], ALLOWED)
        self.assertEqual(results["viewer"], DENIED)

    def test_08_expand(self):
        tree = self.permission.permissions_expand(TENANT, PermissionExpandBody(
            metadata=PermissionExpandRequestMetadata(snap_token=Compat.snap_token),
            entity=doc("3"),
            permission="view",
        )).tree
        self.assertEqual(tree.entity.id, "3")
        self.assertIsNotNone(tree.expand)
        self.assertEqual(tree.expand.operation.value, "OPERATION_UNION")

    def test_09_read_relationships_and_attributes(self):
        def fetch(token):
            page = self.data.data_relationships_read(TENANT, ReadRelationshipsBody(
                metadata=RelationshipReadRequestMetadata(snap_token=Compat.snap_token),
                filter=TupleFilter(entity=EntityFilter(type="document", ids=[]),
                                   relation="viewer",
                                   subject=SubjectFilter(type="user", ids=["dave"])),
                page_size=2,
                continuous_token=token,
            ))
            return [t.entity.id for t in page.tuples], page.continuous_token

        self.assertEqual(sorted(pages(fetch)), ["10", "11", "12", "13", "14"])
        attributes = self.data.data_attributes_read(TENANT, ReadAttributesBody(
            metadata=AttributeReadRequestMetadata(snap_token=Compat.snap_token),
            filter=AttributeFilter(entity=EntityFilter(type="document", ids=["4"]),
                                   attributes=["public"]),
            page_size=10,
        )).attributes
        self.assertEqual(len(attributes), 1)
        self.assertEqual(attributes[0].attribute, "public")
        self.assertEqual(attributes[0].value.to_dict()["@type"],
                         "type.googleapis.com/base.v1.BooleanValue")

    def test_10_bundles(self):
        bundle = DataBundle(
            name="share",
            arguments=["doc", "who"],
            operations=[V1Operation(relationships_write=["document:{{.doc}}#viewer@user:{{.who}}"])],
        )
        written = self.bundle.bundle_write(TENANT, BundleWriteBody(bundles=[bundle]))
        self.assertEqual(written.names, ["share"])
        read = self.bundle.bundle_read(TENANT, BundleReadBody(name="share"))
        self.assertEqual(read.bundle.arguments, ["doc", "who"])
        ran = self.data.bundle_run(TENANT, RunBundleBody(
            name="share", arguments={"doc": "7", "who": "frank"}))
        Compat.snap_token = ran.snap_token
        self.assertEqual(self.check(doc("7"), "view", user("frank")), ALLOWED)
        deleted = self.bundle.bundle_delete(TENANT, BundleDeleteBody(name="share"))
        self.assertEqual(deleted.name, "share")

    def test_11_delete(self):
        deleted = self.data.data_delete(TENANT, DataDeleteBody(
            tuple_filter=TupleFilter(entity=EntityFilter(type="document", ids=["1"]),
                                     relation="owner",
                                     subject=SubjectFilter(type="user", ids=["alice"])),
            attribute_filter=AttributeFilter(),
        ))
        Compat.snap_token = deleted.snap_token
        self.assertEqual(self.check(doc("1"), "edit", user("alice")), DENIED)

    def test_12_errors(self):
        # Bad input: 400 with Permify's error body naming the problem.
        with self.assertRaises(ApiException) as caught:
            self.check(Entity(type="folder", id="1"), "view", user("alice"))
        self.assertEqual(caught.exception.status, 400)
        self.assertIn("folder", caught.exception.body)
        # An unknown tenant: 404.
        with self.assertRaises(ApiException) as caught:
            self.schema.schemas_read("no-such-tenant", SchemaReadBody())
        self.assertEqual(caught.exception.status, 404)

    def test_13_tenant_delete(self):
        deleted = self.tenancy.tenants_delete(TENANT)
        self.assertEqual(deleted.tenant_id, TENANT)


if __name__ == "__main__":
    unittest.main(verbosity=2)
