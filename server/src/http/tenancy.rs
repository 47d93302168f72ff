//! `base.v1.Tenancy` over HTTP.

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
        "Create" => unary(filter, route, call!(tenant_create)),
        "Delete" => unary(filter, route, call!(tenant_delete)),
        "List" => unary(filter, route, call!(tenant_list)),
        _ => return None,
    })
}
