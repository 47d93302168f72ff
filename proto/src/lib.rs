//! The `base.v1` API of Lookout: protobuf types, tonic clients and servers, and JSON
//! transcoding, wire-compatible with Permify's public gRPC and HTTP API.
//!
//! - [`base::v1`] (also re-exported as [`v1`]): messages, enums, `*_server` and `*_client`
//!   modules for the Permission, Watch, Schema, Data, Bundle and Tenancy services. Every message
//!   implements [`prost::Name`], with type URLs `type.googleapis.com/base.v1.<Name>`.
//! - [`google::api::expr::v1alpha1`]: the CEL messages that `RuleDefinition` embeds.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of all of the above plus the well-known
//!   types they import, for gRPC reflection.
//! - [`json`]: protobuf JSON in the shape Permify's HTTP gateway speaks.
//! - [`routes`]: the HTTP routes of Permify's gateway and the gRPC method each maps to.

pub mod json;
pub mod routes;

/// Package `base.v1`.
pub mod base {
    /// Generated code for package `base.v1`.
    // Generated code: prost and tonic emit items we do not document, and tonic's generated
    // servers may use patterns our workspace lints (clippy restriction lints) reject.
    #[allow(
        missing_docs,
        clippy::all,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )]
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/base.v1.rs"));
    }
}

/// CEL expression messages (package `google.api.expr.v1alpha1`).
pub mod google {
    /// Package `google.api`.
    pub mod api {
        /// Package `google.api.expr`.
        pub mod expr {
            /// Generated code for package `google.api.expr.v1alpha1`.
            // Generated code; see the note on `base::v1`.
            #[allow(
                missing_docs,
                clippy::all,
                clippy::unwrap_used,
                clippy::expect_used,
                clippy::panic
            )]
            pub mod v1alpha1 {
                include!(concat!(env!("OUT_DIR"), "/google.api.expr.v1alpha1.rs"));
            }
        }
    }
}

pub use base::v1;

/// Encoded `google.protobuf.FileDescriptorSet` of `base.v1`, the CEL messages and the
/// well-known types they import. Register it with gRPC reflection; [`json`] decodes it once.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/lookout_descriptor_set.bin"));
