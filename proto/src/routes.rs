//! The HTTP routes of Permify's gateway (its `google.api.http` rules) and the gRPC method each
//! one maps to. Our .proto files carry no HTTP annotations; the server routes by hand from this
//! table.
//!
//! Every route except `DELETE /v1/tenants/{id}` takes the whole request message as its JSON body
//! (`body: "*"`); path parameters (`tenant_id`, `id`) fill the request field of the same name and
//! override the body's value, as grpc-gateway does. Server-streaming routes answer with one JSON
//! object per line, each `{"result": <message>}` (or `{"error": <status>}`).

/// One HTTP route of the JSON API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// HTTP method: `POST`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// Path template; `{name}` segments bind the request field `name`.
    pub path: &'static str,
    /// gRPC service name within `base.v1`, e.g. `Permission`.
    pub service: &'static str,
    /// gRPC method name, e.g. `LookupEntityStream`.
    pub rpc: &'static str,
    /// Whether the request body is the request message (`body: "*"`).
    pub body: bool,
    /// Whether the method streams its responses.
    pub server_streaming: bool,
}

impl Route {
    /// The gRPC path of the method, e.g. `/base.v1.Permission/Check`.
    pub fn grpc_path(&self) -> String {
        format!("/base.v1.{}/{}", self.service, self.rpc)
    }

    /// The names of the path parameters, in order, e.g. `["tenant_id"]`.
    pub fn path_params(&self) -> impl Iterator<Item = &'static str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
    }
}

const fn post(path: &'static str, service: &'static str, rpc: &'static str) -> Route {
    Route {
        method: "POST",
        path,
        service,
        rpc,
        body: true,
        server_streaming: false,
    }
}

const fn streaming(route: Route) -> Route {
    Route {
        server_streaming: true,
        ..route
    }
}

/// All routes, in the order of the services and methods of `base.v1`.
pub const ROUTES: &[Route] = &[
    post(
        "/v1/tenants/{tenant_id}/permissions/check",
        "Permission",
        "Check",
    ),
    post(
        "/v1/tenants/{tenant_id}/permissions/bulk-check",
        "Permission",
        "BulkCheck",
    ),
    post(
        "/v1/tenants/{tenant_id}/permissions/expand",
        "Permission",
        "Expand",
    ),
    post(
        "/v1/tenants/{tenant_id}/permissions/lookup-entity",
        "Permission",
        "LookupEntity",
    ),
    streaming(post(
        "/v1/tenants/{tenant_id}/permissions/lookup-entity-stream",
        "Permission",
        "LookupEntityStream",
    )),
    post(
        "/v1/tenants/{tenant_id}/permissions/lookup-subject",
        "Permission",
        "LookupSubject",
    ),
    post(
        "/v1/tenants/{tenant_id}/permissions/subject-permission",
        "Permission",
        "SubjectPermission",
    ),
    streaming(post("/v1/tenants/{tenant_id}/watch", "Watch", "Watch")),
    post("/v1/tenants/{tenant_id}/schemas/write", "Schema", "Write"),
    Route {
        method: "PATCH",
        ..post(
            "/v1/tenants/{tenant_id}/schemas/partial-write",
            "Schema",
            "PartialWrite",
        )
    },
    post("/v1/tenants/{tenant_id}/schemas/read", "Schema", "Read"),
    post("/v1/tenants/{tenant_id}/schemas/list", "Schema", "List"),
    post("/v1/tenants/{tenant_id}/data/write", "Data", "Write"),
    post(
        "/v1/tenants/{tenant_id}/relationships/write",
        "Data",
        "WriteRelationships",
    ),
    post(
        "/v1/tenants/{tenant_id}/data/relationships/read",
        "Data",
        "ReadRelationships",
    ),
    post(
        "/v1/tenants/{tenant_id}/data/attributes/read",
        "Data",
        "ReadAttributes",
    ),
    post("/v1/tenants/{tenant_id}/data/delete", "Data", "Delete"),
    post(
        "/v1/tenants/{tenant_id}/relationships/delete",
        "Data",
        "DeleteRelationships",
    ),
    post(
        "/v1/tenants/{tenant_id}/data/run-bundle",
        "Data",
        "RunBundle",
    ),
    post("/v1/tenants/{tenant_id}/bundle/write", "Bundle", "Write"),
    post("/v1/tenants/{tenant_id}/bundle/read", "Bundle", "Read"),
    post("/v1/tenants/{tenant_id}/bundle/delete", "Bundle", "Delete"),
    post("/v1/tenants/create", "Tenancy", "Create"),
    Route {
        method: "DELETE",
        body: false,
        ..post("/v1/tenants/{id}", "Tenancy", "Delete")
    },
    post("/v1/tenants/list", "Tenancy", "List"),
];

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    include!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/shared.rs"
    ));

    /// Every route matches a path and method of Permify's OpenAPI document, and vice versa, when
    /// `../shared` is there (`fixtures/shared.rs`).
    #[test]
    fn routes_match_the_openapi_document() {
        let Some(path) = shared_path(
            "routes_match_the_openapi_document",
            "reference/permify-openapi.json",
        ) else {
            return;
        };
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = Vec::new();
        for (path, item) in paths {
            for method in item.as_object().unwrap().keys() {
                documented.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut ours: Vec<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_owned(), r.path.to_owned()))
            .collect();
        ours.sort();
        assert_eq!(ours, documented);
    }

    #[test]
    fn grpc_paths_and_params() {
        let check = &ROUTES[0];
        assert_eq!(check.grpc_path(), "/base.v1.Permission/Check");
        assert_eq!(check.path_params().collect::<Vec<_>>(), ["tenant_id"]);
        let delete = ROUTES.iter().find(|r| r.method == "DELETE").unwrap();
        assert_eq!(delete.path_params().collect::<Vec<_>>(), ["id"]);
        assert!(!delete.body);
        assert_eq!(
            ROUTES.iter().filter(|r| r.server_streaming).count(),
            2,
            "LookupEntityStream and Watch"
        );
    }
}
