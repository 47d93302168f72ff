//! The one table from the gateway's routes ([`lookout_proto::routes::ROUTES`]) to the service
//! method each calls, through the unary or the streaming handler of [`super::handler`].
//!
//! A route is named by its gRPC service and method, so the table reads like the `.proto`
//! files; a route of `ROUTES` missing here makes the router fail to build (and the test in
//! `http/mod.rs` fail). Watch on a server started with `--watch=false` answers 404 naming the
//! reason.

use axum::routing::{MethodFilter, MethodRouter, on};
use lookout_proto::routes::Route;

use super::AppState;
use super::handler::{error_response, streaming, unary};
use crate::error::{ApiError, ErrorCode};
use crate::service::watch::WATCH_DISABLED;

/// The handler of `route` with method filter `filter`, or `None` if the table has no entry.
pub(super) fn handler(
    route: &'static Route,
    filter: MethodFilter,
    watch: bool,
) -> Option<MethodRouter<AppState>> {
    Some(match (route.service, route.rpc) {
        ("Permission", "Check") => unary(filter, route, call!(check)),
        ("Permission", "BulkCheck") => unary(filter, route, call!(bulk_check)),
        ("Permission", "Expand") => unary(filter, route, call!(expand)),
        ("Permission", "LookupEntity") => unary(filter, route, call!(lookup_entity)),
        ("Permission", "LookupEntityStream") => {
            streaming(filter, route, call!(lookup_entity_stream))
        }
        ("Permission", "LookupSubject") => unary(filter, route, call!(lookup_subject)),
        ("Permission", "SubjectPermission") => unary(filter, route, call!(subject_permission)),

        ("Watch", "Watch") if watch => streaming(filter, route, call!(watch)),
        ("Watch", "Watch") => on(filter, || async {
            error_response(&ApiError::new(ErrorCode::NotFound, WATCH_DISABLED))
        }),

        ("Schema", "Write") => unary(filter, route, call!(schema_write)),
        ("Schema", "PartialWrite") => unary(filter, route, call!(schema_partial_write)),
        ("Schema", "Read") => unary(filter, route, call!(schema_read)),
        ("Schema", "List") => unary(filter, route, call!(schema_list)),

        ("Data", "Write") => unary(filter, route, call!(data_write)),
        ("Data", "WriteRelationships") => unary(filter, route, call!(write_relationships)),
        ("Data", "ReadRelationships") => unary(filter, route, call!(read_relationships)),
        ("Data", "ReadAttributes") => unary(filter, route, call!(read_attributes)),
        ("Data", "Delete") => unary(filter, route, call!(data_delete)),
        ("Data", "DeleteRelationships") => unary(filter, route, call!(delete_relationships)),
        ("Data", "RunBundle") => unary(filter, route, call!(run_bundle)),

        ("Bundle", "Write") => unary(filter, route, call!(bundle_write)),
        ("Bundle", "Read") => unary(filter, route, call!(bundle_read)),
        ("Bundle", "Delete") => unary(filter, route, call!(bundle_delete)),

        ("Tenancy", "Create") => unary(filter, route, call!(tenant_create)),
        ("Tenancy", "Delete") => unary(filter, route, call!(tenant_delete)),
        ("Tenancy", "List") => unary(filter, route, call!(tenant_list)),

        _ => return None,
    })
}
