//! `base.v1.Data` over HTTP.

use axum::routing::{MethodFilter, MethodRouter};
use lookout_proto::routes::Route;

use super::AppState;
use super::handler::unary;

pub(super) fn handler(
    rpc: &str,
    filter: MethodFilter,
    route: &'static Route,
) -> Option<MethodRouter<AppState>> {
    Some(match rpc {
        "Write" => unary(filter, route, call!(data_write)),
        "WriteRelationships" => unary(filter, route, call!(write_relationships)),
        "ReadRelationships" => unary(filter, route, call!(read_relationships)),
        "ReadAttributes" => unary(filter, route, call!(read_attributes)),
        "Delete" => unary(filter, route, call!(data_delete)),
        "DeleteRelationships" => unary(filter, route, call!(delete_relationships)),
        "RunBundle" => unary(filter, route, call!(run_bundle)),
        _ => return None,
    })
}
