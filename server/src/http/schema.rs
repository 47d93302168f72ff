//! `base.v1.Schema` over HTTP.

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
        "Write" => unary(filter, route, call!(schema_write)),
        "PartialWrite" => unary(filter, route, call!(schema_partial_write)),
        "Read" => unary(filter, route, call!(schema_read)),
        "List" => unary(filter, route, call!(schema_list)),
        _ => return None,
    })
}
