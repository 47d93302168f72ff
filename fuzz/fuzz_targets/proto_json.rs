//! The HTTP API's JSON decoding into request messages, as the gateway does it (lenient), and
//! re-encoding what decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout_proto::json::{from_json, from_json_lenient, to_json_vec};
use lookout_proto::v1;

fn round<M: prost::Message + prost::Name + Default>(data: &[u8]) {
    if let Ok(msg) = from_json_lenient::<M>(data) {
        let _ = to_json_vec(&msg);
    }
    let _ = from_json::<M>(data);
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the message type so one corpus covers them all.
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    match pick % 8 {
        0 => round::<v1::PermissionCheckRequest>(body),
        1 => round::<v1::DataWriteRequest>(body),
        2 => round::<v1::SchemaWriteRequest>(body),
        3 => round::<v1::RelationshipReadRequest>(body),
        4 => round::<v1::AttributeReadRequest>(body),
        5 => round::<v1::PermissionLookupEntityRequest>(body),
        6 => round::<v1::Tuple>(body),
        _ => round::<v1::Attribute>(body),
    }
});
