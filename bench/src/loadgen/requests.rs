//! Where request messages come from: generated from a data set with per-request random IDs,
//! or read from a JSON-lines file and sent round-robin.
//!
//! Generated request `i` depends only on the seed and `i` (not on which worker sends it or
//! when), so a run is reproducible whatever the concurrency. Requests are built before the run
//! ([`PREBUILD`] of them); past that a worker builds request `i` just before sending it,
//! outside the timed section.

use std::path::Path;

use bytes::Bytes;
use lookout_proto::json::{self, JsonError};
use lookout_proto::v1::{
    DataWriteRequest, DataWriteRequestMetadata, Entity, PermissionBulkCheckRequest,
    PermissionBulkCheckRequestItem, PermissionCheckRequest, PermissionCheckRequestMetadata,
    PermissionLookupEntityRequest, PermissionLookupEntityRequestMetadata, Subject, Tuple,
};
use tonic_health::pb::HealthCheckRequest;

use super::LoadgenError;
use super::cli::Dataset;
use crate::docs::Shape;
use crate::rng::Rng;

/// Requests built ahead of the run, at most.
pub const PREBUILD: u64 = 65_536;

/// The entity type of the docs model's checks, lookups and writes.
const DOCS_ENTITY: &str = "document";

/// Parameters of generated requests.
#[derive(Debug, Clone)]
pub struct Generator {
    pub dataset: Dataset,
    pub seed: u64,
    pub tenant: String,
    pub permission: String,
    pub depth: i32,
    pub write_tuples: u32,
    pub bulk_size: u32,
}

impl Generator {
    /// The random stream of request `i`: a SplitMix64 seeded from the seed and the index.
    fn rng(&self, i: u64) -> Rng {
        // Offset from the data set's own seed so request IDs are not the data set's sequence.
        let base = self.seed ^ 0x6c6f_6164_6765_6e21;
        Rng::new(base.wrapping_add(i.wrapping_mul(0xd1b5_4a32_d192_ed03)))
    }

    /// A random (entity type, entity, user) of the data set: a document in `docs`; a content
    /// or an interaction, one or the other at random, in `social`.
    fn pick(&self, rng: &mut Rng) -> (&'static str, u64, u64) {
        match self.dataset {
            Dataset::Docs(n) => {
                let shape = Shape::new(n);
                let document = rng.below(shape.documents);
                (DOCS_ENTITY, document, rng.below(shape.users))
            }
            Dataset::Social(n) => {
                let ty = if rng.below(2) == 0 {
                    "content"
                } else {
                    "interaction"
                };
                let entity = rng.below(n);
                (ty, entity, rng.below(n))
            }
        }
    }

    /// The entity type that lookups list, and the number of users.
    fn lookup_space(&self) -> (&'static str, u64) {
        match self.dataset {
            Dataset::Docs(n) => (DOCS_ENTITY, Shape::new(n).users),
            Dataset::Social(n) => ("content", n),
        }
    }

    /// Permission.Check of a random entity (see `Generator::pick`) for a random user.
    pub fn check(&self, i: u64) -> PermissionCheckRequest {
        let mut rng = self.rng(i);
        let (entity, subject) = self.pair(&mut rng);
        PermissionCheckRequest {
            tenant_id: self.tenant.clone(),
            metadata: Some(self.check_metadata()),
            entity: Some(entity),
            permission: self.permission.clone(),
            subject: Some(subject),
            ..Default::default()
        }
    }

    /// Permission.BulkCheck of `bulk_size` random (entity, user) pairs, as [`Generator::check`]
    /// draws them.
    pub fn bulk_check(&self, i: u64) -> PermissionBulkCheckRequest {
        let mut rng = self.rng(i);
        let items = (0..self.bulk_size)
            .map(|_| {
                let (entity, subject) = self.pair(&mut rng);
                PermissionBulkCheckRequestItem {
                    entity: Some(entity),
                    permission: self.permission.clone(),
                    subject: Some(subject),
                }
            })
            .collect();
        PermissionBulkCheckRequest {
            tenant_id: self.tenant.clone(),
            metadata: Some(self.check_metadata()),
            items,
            ..Default::default()
        }
    }

    /// A random entity to check and a random user to check it for.
    fn pair(&self, rng: &mut Rng) -> (Entity, Subject) {
        let (ty, id, user) = self.pick(rng);
        (entity(ty, id), user_subject(user))
    }

    fn check_metadata(&self) -> PermissionCheckRequestMetadata {
        PermissionCheckRequestMetadata {
            depth: self.depth,
            ..Default::default()
        }
    }

    /// Permission.LookupEntityStream of the documents (contents in `social`) a random user can
    /// see.
    pub fn lookup_entity(&self, i: u64) -> PermissionLookupEntityRequest {
        let (entity_type, users) = self.lookup_space();
        let mut rng = self.rng(i);
        let user = rng.below(users);
        PermissionLookupEntityRequest {
            tenant_id: self.tenant.clone(),
            metadata: Some(PermissionLookupEntityRequestMetadata {
                depth: self.depth,
                ..Default::default()
            }),
            entity_type: entity_type.to_owned(),
            permission: self.permission.clone(),
            subject: Some(user_subject(user)),
            ..Default::default()
        }
    }

    /// Data.Write of `write_tuples` tuples with random IDs: `document:D#viewer@user:U`, or
    /// `user:A#follower@user:B` in `social`.
    pub fn write(&self, i: u64) -> DataWriteRequest {
        let mut rng = self.rng(i);
        let tuples = (0..self.write_tuples)
            .map(|_| match self.dataset {
                Dataset::Docs(_) => {
                    let (ty, document, user) = self.pick(&mut rng);
                    Tuple {
                        entity: Some(entity(ty, document)),
                        relation: "viewer".to_owned(),
                        subject: Some(user_subject(user)),
                    }
                }
                Dataset::Social(n) => {
                    let followed = rng.below(n);
                    Tuple {
                        entity: Some(entity("user", followed)),
                        relation: "follower".to_owned(),
                        subject: Some(user_subject(rng.below(n))),
                    }
                }
            })
            .collect();
        DataWriteRequest {
            tenant_id: self.tenant.clone(),
            metadata: Some(DataWriteRequestMetadata::default()),
            tuples,
            attributes: Vec::new(),
        }
    }

    /// grpc.health.v1.Health/Check of the whole server.
    pub fn health(&self, _i: u64) -> HealthCheckRequest {
        HealthCheckRequest {
            service: String::new(),
        }
    }
}

fn entity(ty: &str, id: u64) -> Entity {
    Entity {
        r#type: ty.to_owned(),
        id: id.to_string(),
    }
}

fn user_subject(id: u64) -> Subject {
    Subject {
        r#type: "user".to_owned(),
        id: id.to_string(),
        relation: String::new(),
    }
}

/// Builds request `i` from the generator's parameters.
pub type Make<R> = Box<dyn Fn(&Generator, u64) -> R + Send + Sync>;

/// The requests of one run: a prebuilt list, continued by a generator or cycled round-robin.
pub struct Pool<R> {
    prebuilt: Vec<R>,
    generate: Option<(Generator, Make<R>)>,
}

impl<R: Clone + 'static> Pool<R> {
    /// Generated requests; the first `min(expected, PREBUILD)` are built now.
    pub fn generated(generator: Generator, make: fn(&Generator, u64) -> R, expected: u64) -> Self {
        let prebuilt = (0..expected.min(PREBUILD))
            .map(|i| make(&generator, i))
            .collect();
        Pool {
            prebuilt,
            generate: Some((generator, Box::new(make))),
        }
    }

    /// Fixed requests, sent round-robin.
    pub fn cycled(requests: Vec<R>) -> Result<Self, LoadgenError> {
        if requests.is_empty() {
            return Err(LoadgenError::Usage("no requests to send".to_owned()));
        }
        Ok(Pool {
            prebuilt: requests,
            generate: None,
        })
    }

    /// Request number `i` (`None` only for an empty pool, which the constructors rule out).
    pub fn get(&self, i: u64) -> Option<R> {
        if let Some(r) = usize::try_from(i).ok().and_then(|i| self.prebuilt.get(i)) {
            return Some(r.clone());
        }
        match &self.generate {
            Some((generator, make)) => Some(make(generator, i)),
            None => {
                let len = u64::try_from(self.prebuilt.len()).ok().filter(|&n| n > 0)?;
                let slot = usize::try_from(i % len).ok()?;
                self.prebuilt.get(slot).cloned()
            }
        }
    }

    /// Requests held in memory.
    pub fn prebuilt_len(&self) -> usize {
        self.prebuilt.len()
    }
}

impl<R: prost::Message + 'static> Pool<R> {
    /// The same requests as protobuf bytes: the prebuilt ones encoded now, generated ones when
    /// they are made. A call then sends its bytes as they are (a reference count, not a copy),
    /// so the client spends nothing per call on cloning and encoding a message.
    pub fn encoded(self) -> Pool<Bytes> {
        Pool {
            prebuilt: self
                .prebuilt
                .iter()
                .map(|r| Bytes::from(r.encode_to_vec()))
                .collect(),
            generate: self.generate.map(|(generator, make)| {
                let make: Make<Bytes> =
                    Box::new(move |g: &Generator, i| Bytes::from(make(g, i).encode_to_vec()));
                (generator, make)
            }),
        }
    }
}

/// Reads request bodies, one JSON object per line (blank lines skipped), decoding each with
/// `decode`.
pub fn read_lines<M>(
    path: &Path,
    decode: impl Fn(&[u8]) -> Result<M, String>,
) -> Result<Vec<M>, LoadgenError> {
    let text = std::fs::read(path).map_err(|source| LoadgenError::ReadData {
        path: path.display().to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let message = decode(line).map_err(|detail| LoadgenError::DataLine {
            path: path.display().to_string(),
            line: n + 1,
            detail,
        })?;
        out.push(message);
    }
    if out.is_empty() {
        return Err(LoadgenError::Usage(format!(
            "{}: no requests (one JSON object per line expected)",
            path.display()
        )));
    }
    Ok(out)
}

fn json_err(e: JsonError) -> String {
    e.to_string()
}

/// Request messages that name their tenant.
pub trait Tenanted: prost::Message + prost::Name + Default {
    fn tenant_id_mut(&mut self) -> &mut String;
}

macro_rules! tenanted {
    ($($message:ty),*) => {$(
        impl Tenanted for $message {
            fn tenant_id_mut(&mut self) -> &mut String {
                &mut self.tenant_id
            }
        }
    )*};
}

tenanted!(
    PermissionCheckRequest,
    PermissionBulkCheckRequest,
    PermissionLookupEntityRequest,
    DataWriteRequest
);

/// Decodes a request body in Permify's JSON shape; an empty `tenant_id` becomes `tenant`.
pub fn decode<M: Tenanted>(line: &[u8], tenant: &str) -> Result<M, String> {
    let mut m: M = json::from_json(line).map_err(json_err)?;
    if m.tenant_id_mut().is_empty() {
        tenant.clone_into(m.tenant_id_mut());
    }
    Ok(m)
}

/// Decodes a health check body: `{}` or `{"service": "base.v1.Permission"}`.
pub fn decode_health(line: &[u8]) -> Result<HealthCheckRequest, String> {
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| format!("not JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "expected a JSON object".to_owned())?;
    let mut service = String::new();
    for (key, value) in object {
        match (key.as_str(), value) {
            ("service", serde_json::Value::String(s)) => service.clone_from(s),
            ("service", _) => return Err("`service` must be a string".to_owned()),
            (other, _) => return Err(format!("unknown field `{other}`")),
        }
    }
    Ok(HealthCheckRequest { service })
}

/// A health check request as JSON (its message is not in Lookout's descriptor set).
pub fn health_json(request: &HealthCheckRequest) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "service": request.service })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::Write;

    use super::*;

    fn generator(documents: u64) -> Generator {
        Generator {
            dataset: Dataset::Docs(documents),
            seed: 7,
            tenant: "t1".to_owned(),
            permission: "view".to_owned(),
            depth: 50,
            write_tuples: 3,
            bulk_size: 4,
        }
    }

    fn id_of(e: &Option<Entity>) -> u64 {
        e.as_ref().unwrap().id.parse().unwrap()
    }

    fn subject_id(s: &Option<Subject>) -> u64 {
        s.as_ref().unwrap().id.parse().unwrap()
    }

    #[test]
    fn checks_vary_within_the_data_set() {
        let g = generator(1000);
        let shape = Shape::new(1000);
        let mut pairs = HashSet::new();
        for i in 0..2000 {
            let r = g.check(i);
            assert_eq!(r.tenant_id, "t1");
            assert_eq!(r.permission, "view");
            assert_eq!(r.entity.as_ref().unwrap().r#type, "document");
            assert_eq!(r.subject.as_ref().unwrap().r#type, "user");
            assert_eq!(r.metadata.as_ref().unwrap().depth, 50);
            let d = id_of(&r.entity);
            let u = subject_id(&r.subject);
            assert!(d < shape.documents && u < shape.users);
            pairs.insert((d, u));
        }
        // 100,000 possible pairs: 2,000 draws should be nearly all distinct.
        assert!(pairs.len() > 1900, "{}", pairs.len());
    }

    #[test]
    fn bulk_checks_draw_their_items_as_checks_do() {
        let g = generator(1000);
        let shape = Shape::new(1000);
        let r = g.bulk_check(5);
        assert_eq!(r.tenant_id, "t1");
        assert_eq!(r.metadata.as_ref().unwrap().depth, 50);
        assert_eq!(r.items.len(), 4);
        // The first item is the check request 5 would make; the items differ.
        let single = g.check(5);
        assert_eq!(r.items[0].entity, single.entity);
        assert_eq!(r.items[0].subject, single.subject);
        let pairs: HashSet<(u64, u64)> = r
            .items
            .iter()
            .map(|item| {
                assert_eq!(item.permission, "view");
                let pair = (id_of(&item.entity), subject_id(&item.subject));
                assert!(pair.0 < shape.documents && pair.1 < shape.users);
                pair
            })
            .collect();
        assert_eq!(pairs.len(), 4);
        assert_eq!(g.bulk_check(5), r);
        let line = json::to_json_vec(&r).unwrap();
        assert_eq!(
            decode::<PermissionBulkCheckRequest>(&line, "t1").unwrap(),
            r
        );
    }

    #[test]
    fn generation_depends_only_on_seed_and_index() {
        let g = generator(500);
        assert_eq!(g.check(17), g.check(17));
        assert_eq!(g.lookup_entity(3), generator(500).lookup_entity(3));
        let other = Generator {
            seed: 8,
            ..generator(500)
        };
        let same = (0..100).filter(|&i| other.check(i) == g.check(i)).count();
        assert!(same < 5, "{same}");
    }

    #[test]
    fn lookups_and_writes() {
        let g = generator(300);
        let users: HashSet<u64> = (0..200)
            .map(|i| {
                let r = g.lookup_entity(i);
                assert_eq!(r.entity_type, "document");
                assert_eq!(r.permission, "view");
                subject_id(&r.subject)
            })
            .collect();
        assert!(users.len() > 10);
        let w = g.write(0);
        assert_eq!(w.tuples.len(), 3);
        assert!(w.tuples.iter().all(|t| t.relation == "viewer"));
        assert!(w.tuples.iter().all(|t| id_of(&t.entity) < 300));
        assert_eq!(g.health(0).service, "");
    }

    #[test]
    fn pools_prebuild_then_generate_the_same_sequence() {
        let g = generator(1000);
        let pool = Pool::generated(g.clone(), Generator::check, 10);
        assert_eq!(pool.prebuilt_len(), 10);
        for i in [0, 9, 10, 11, 5000] {
            assert_eq!(pool.get(i), Some(g.check(i)));
        }
        let big = Pool::generated(g, Generator::check, u64::MAX);
        assert_eq!(big.prebuilt_len() as u64, PREBUILD);
    }

    #[test]
    fn social_requests_ask_contents_and_interactions_of_the_data_set() {
        let g = Generator {
            dataset: Dataset::Social(50),
            ..generator(1)
        };
        let mut types = HashSet::new();
        for i in 0..200 {
            let c = g.check(i);
            types.insert(c.entity.as_ref().unwrap().r#type.clone());
            assert!(id_of(&c.entity) < 50 && subject_id(&c.subject) < 50);
        }
        assert_eq!(
            types,
            HashSet::from(["content".to_owned(), "interaction".to_owned()])
        );
        assert_eq!(g.lookup_entity(3).entity_type, "content");
        let w = g.write(0);
        assert!(w.tuples.iter().all(|t| t.relation == "follower"
            && t.entity.as_ref().unwrap().r#type == "user"
            && id_of(&t.entity) < 50));
    }

    #[test]
    fn encoded_pools_send_the_same_messages() {
        use prost::Message;
        let g = generator(1000);
        let pool = Pool::generated(g.clone(), Generator::check, 10).encoded();
        assert_eq!(pool.prebuilt_len(), 10);
        for i in [0, 9, 10, 11, 5000] {
            let bytes = pool.get(i).unwrap();
            assert_eq!(
                PermissionCheckRequest::decode(bytes).unwrap(),
                g.check(i),
                "{i}"
            );
        }
        let fixed = Pool::cycled(vec![g.write(1), g.write(2)])
            .unwrap()
            .encoded();
        let third = fixed.get(2).unwrap();
        assert_eq!(DataWriteRequest::decode(third).unwrap(), g.write(1));
    }

    #[test]
    fn fixed_pools_are_round_robin() {
        let pool = Pool::cycled(vec!["a", "b", "c"]).unwrap();
        let seq: Vec<_> = (0..7).map(|i| pool.get(i).unwrap()).collect();
        assert_eq!(seq, ["a", "b", "c", "a", "b", "c", "a"]);
        assert!(Pool::<u8>::cycled(Vec::new()).is_err());
    }

    #[test]
    fn data_lines_decode_in_permifys_shape() {
        let mut file = tempfile();
        writeln!(
            file.1,
            r#"{{"tenant_id":"t2","metadata":{{"depth":20}},"entity":{{"type":"document","id":"1"}},"permission":"view","subject":{{"type":"user","id":"9"}}}}"#
        )
        .unwrap();
        writeln!(file.1).unwrap();
        writeln!(
            file.1,
            r#"{{"entity":{{"type":"document","id":"2"}},"permission":"edit","subject":{{"type":"group","id":"1","relation":"member"}}}}"#
        )
        .unwrap();
        file.1.flush().unwrap();
        let checks = read_lines(&file.0, |l| decode::<PermissionCheckRequest>(l, "t1")).unwrap();
        assert_eq!(checks.len(), 2);
        assert_eq!(checks[0].tenant_id, "t2");
        assert_eq!(checks[0].metadata.as_ref().unwrap().depth, 20);
        assert_eq!(checks[1].tenant_id, "t1");
        assert_eq!(checks[1].subject.as_ref().unwrap().relation, "member");
        // The generated requests read back the same through JSON.
        let g = generator(100);
        let line = json::to_json_vec(&g.check(4)).unwrap();
        assert_eq!(
            decode::<PermissionCheckRequest>(&line, "t1").unwrap(),
            g.check(4)
        );
        let line = json::to_json_vec(&g.write(4)).unwrap();
        assert_eq!(decode::<DataWriteRequest>(&line, "t1").unwrap(), g.write(4));
        let line = json::to_json_vec(&g.lookup_entity(4)).unwrap();
        assert_eq!(
            decode::<PermissionLookupEntityRequest>(&line, "t1").unwrap(),
            g.lookup_entity(4)
        );
        std::fs::remove_file(&file.0).unwrap();
    }

    #[test]
    fn bad_data_lines_name_the_line() {
        let mut file = tempfile();
        writeln!(file.1, r#"{{"permission":"view"}}"#).unwrap();
        writeln!(file.1, r#"{{"permision":"view"}}"#).unwrap();
        file.1.flush().unwrap();
        let err = read_lines(&file.0, |l| decode::<PermissionCheckRequest>(l, "t1")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(":2:") && text.contains("permision"), "{text}");
        std::fs::remove_file(&file.0).unwrap();
    }

    #[test]
    fn health_bodies() {
        assert_eq!(decode_health(b"{}").unwrap().service, "");
        let r = decode_health(br#"{"service":"base.v1.Permission"}"#).unwrap();
        assert_eq!(r.service, "base.v1.Permission");
        assert!(decode_health(br#"{"svc":1}"#).is_err());
        assert_eq!(health_json(&r), br#"{"service":"base.v1.Permission"}"#);
    }

    fn tempfile() -> (std::path::PathBuf, std::fs::File) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "lookout-loadgen-test-{}-{}.jsonl",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::File::create(&path).unwrap();
        (path, file)
    }
}
