//! `base.v1.Permission` over HTTP.

use axum::routing::{MethodFilter, MethodRouter};
use lookout_proto::routes::Route;

use super::AppState;
use super::handler::{streaming, unary};

pub(super) fn handler(
    rpc: &str,
    filter: MethodFilter,
    route: &'static Route,
) -> Option<MethodRouter<AppState>> {
    Some(match rpc {
        "Check" => unary(filter, route, call!(check)),
        "BulkCheck" => unary(filter, route, call!(bulk_check)),
        "Expand" => unary(filter, route, call!(expand)),
        "LookupEntity" => unary(filter, route, call!(lookup_entity)),
        "LookupEntityStream" => streaming(filter, route, call!(lookup_entity_stream)),
        "LookupSubject" => unary(filter, route, call!(lookup_subject)),
        "SubjectPermission" => unary(filter, route, call!(subject_permission)),
        _ => return None,
    })
}
