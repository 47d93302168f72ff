//! `base.v1.Watch` over HTTP, or a 404 naming the reason on a server started with
//! `--watch=false`.

use axum::routing::{MethodFilter, MethodRouter, on};
use lookout_proto::routes::Route;

use super::AppState;
use super::handler::{error_response, streaming};
use crate::error::{ApiError, ErrorCode};
use crate::service::watch::WATCH_DISABLED;

pub(super) fn handler(
    rpc: &str,
    filter: MethodFilter,
    route: &'static Route,
    enabled: bool,
) -> Option<MethodRouter<AppState>> {
    Some(match rpc {
        "Watch" if enabled => streaming(filter, route, call!(watch)),
        "Watch" => on(filter, || async {
            error_response(&ApiError::new(ErrorCode::NotFound, WATCH_DISABLED))
        }),
        _ => return None,
    })
}
