//! `base.v1.Bundle` over HTTP.

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
        "Write" => unary(filter, route, call!(bundle_write)),
        "Read" => unary(filter, route, call!(bundle_read)),
        "Delete" => unary(filter, route, call!(bundle_delete)),
        _ => return None,
    })
}
