//! Pre-encoded answers for cluster names: the UDP loop's packet cache.
//!
//! Almost every query a node's DNS server sees asks for one of a few dozen cluster names, and the
//! answer only changes when the routing view does. Decoding the query into hickory's types,
//! looking the name up and encoding the answer cost about a third of a query's CPU time (perf,
//! docs/BENCHMARKS.md); the rest is the kernel's. So, as dnsdist's packet cache does, the loop
//! keeps the bytes of each answer after its question, keyed by everything those bytes depend on:
//! the question's name without regard to case, its type, and the query's EDNS (present or not,
//! and its payload size). A hit patches the query's ID and RD/CD flags into the cached header,
//! copies the question verbatim (a client's 0x20 case survives) and appends the cached tail: a
//! few dozen bytes copied and no allocation.
//!
//! What the fast path does not take it leaves to hickory (the slow path), so correctness rests
//! on the slow path alone:
//! - only plain queries are parsed ([`Query::parse`]): one question of class IN without a
//!   compression pointer, opcode QUERY, no header flags but RD, AD and CD, at most an OPT record
//!   of EDNS version 0 with no options and no flag but DO, and nothing after that;
//! - only authoritative answers (cluster names) are kept: they do not depend on who asks, while
//!   refusals and forwarded answers do;
//! - an answer is kept only if it fits 512 bytes, so no client's payload size truncates it, and
//!   only if its bytes after the question are the same whatever the question's case. Cluster
//!   records are owned by lower-case names (`cluster::lookup`), and hickory copies the question
//!   without compressing onto it, so they are; but rather than rest on that, the slow path is
//!   asked again with the question all in lower and all in upper case, and an answer whose tail
//!   differs stays on the slow path;
//! - everything is kept for one generation of the view ([`podswarm_view::watch::Current`]): the
//!   first query after a swap empties the cache, so no answer outlives its view;
//! - at most [`CAPACITY`] answers are kept, and a full cache starts over, so a flood of random
//!   names (each a cacheable NXDOMAIN) cannot grow it.
//!
//! The differential tests below and the `dns_request` fuzz target check that a hit's bytes are
//! the slow path's, byte for byte.

use std::collections::HashMap;

/// The most answers kept.
pub const CAPACITY: usize = 2048;

/// Answers longer than this are left to the slow path: the smallest payload any client may
/// offer (RFC 1035 4.2.1), so nothing cached could have been truncated for some client.
const MAX_CACHED: usize = 512;

const HEADER: usize = 12;
/// A name's longest wire form (RFC 1035 3.1).
const MAX_NAME: usize = 255;
/// Name, type, and EDNS (present, payload).
const MAX_KEY: usize = MAX_NAME + 2 + 3;
/// An OPT record without options: root name, type, class (payload), TTL (flags), RDLENGTH.
const OPT_LEN: usize = 11;
const TYPE_OPT: [u8; 2] = [0, 41];
const CLASS_IN: [u8; 2] = [0, 1];

// Header flag bits, byte 2 and byte 3.
const QR: u8 = 0x80;
const AA: u8 = 0x04;
const TC: u8 = 0x02;
const RD: u8 = 0x01;
const AD: u8 = 0x20;
const CD: u8 = 0x10;

/// A query the fast path can take: its cache key and where its question ends.
#[derive(Debug)]
pub struct Query {
    key: [u8; MAX_KEY],
    key_len: usize,
    question_end: usize,
}

impl Query {
    /// Reads `packet` if it is a plain query (module docs); `None` sends it the slow way.
    pub fn parse(packet: &[u8]) -> Option<Query> {
        let header = packet.get(..HEADER)?;
        // Byte 2: QR, opcode, AA, TC must be clear (RD is free); byte 3: RA, Z and RCODE clear.
        if header[2] & !RD != 0 || header[3] & !(AD | CD) != 0 {
            return None;
        }
        let count = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
        let additional = count(10);
        if count(4) != 1 || count(6) != 0 || count(8) != 0 || additional > 1 {
            return None;
        }
        let mut key = [0u8; MAX_KEY];
        let mut at = HEADER;
        loop {
            // Lengths above 63 are pointers or reserved label types: the slow path's business.
            let len = usize::from(*packet.get(at)?);
            if len > 63 || at - HEADER + 1 + len > MAX_NAME {
                return None;
            }
            let label = packet.get(at..=at + len)?;
            // Lengths are at most 63, below every letter: folding the whole label is safe.
            for (k, b) in key[at - HEADER..].iter_mut().zip(label) {
                *k = b.to_ascii_lowercase();
            }
            at += 1 + len;
            if len == 0 {
                break;
            }
        }
        let name_len = at - HEADER;
        let fixed = packet.get(at..at + 4)?;
        if fixed[2..] != CLASS_IN {
            return None;
        }
        key[name_len..name_len + 2].copy_from_slice(&fixed[..2]);
        let question_end = at + 4;
        let edns = &mut key[name_len + 2..name_len + 5];
        let rest = &packet[question_end..];
        if additional == 0 {
            if !rest.is_empty() {
                return None;
            }
        } else {
            // Root name, OPT, payload, extended RCODE 0, version 0, no flag but DO, no options.
            if rest.len() != OPT_LEN
                || rest[0] != 0
                || rest[1..3] != TYPE_OPT
                || rest[5..7] != [0, 0]
                || rest[7] & 0x7f != 0
                || rest[8..] != [0, 0, 0]
            {
                return None;
            }
            edns[0] = 1;
            edns[1..].copy_from_slice(&rest[3..5]);
        }
        Some(Query {
            key,
            key_len: name_len + 5,
            question_end,
        })
    }

    fn key(&self) -> &[u8] {
        &self.key[..self.key_len]
    }
}

/// An answer's header after the ID (flags and counts) and its bytes after the question.
#[derive(Debug)]
struct Answer {
    header: [u8; HEADER - 2],
    tail: Box<[u8]>,
}

/// The answers of one view generation (module docs).
#[derive(Debug)]
pub struct PacketCache {
    answers: HashMap<Box<[u8]>, Answer, foldhash::fast::RandomState>,
    generation: u64,
}

impl Default for PacketCache {
    fn default() -> Self {
        PacketCache {
            answers: HashMap::with_hasher(foldhash::fast::RandomState::default()),
            generation: 0,
        }
    }
}

impl PacketCache {
    /// Forgets everything when the view moved on since the last call.
    fn sync(&mut self, generation: u64) {
        if generation != self.generation {
            self.answers.clear();
            self.generation = generation;
        }
    }

    /// Writes the answer to `query` (read from `packet`) into `out` when one is kept for the
    /// view `generation`; `false` leaves `out` alone.
    pub fn answer(
        &mut self,
        generation: u64,
        packet: &[u8],
        query: &Query,
        out: &mut Vec<u8>,
    ) -> bool {
        self.sync(generation);
        let Some(answer) = self.answers.get(query.key()) else {
            return false;
        };
        let mut header = answer.header;
        header[0] = (header[0] & !RD) | (packet[2] & RD);
        header[1] = (header[1] & !CD) | (packet[3] & CD);
        out.clear();
        out.extend_from_slice(&packet[..2]);
        out.extend_from_slice(&header);
        out.extend_from_slice(&packet[HEADER..query.question_end]);
        out.extend_from_slice(&answer.tail);
        true
    }

    /// Keeps `response`, the slow path's answer to `query` (read from `packet`) under view
    /// `generation`, if it qualifies (module docs). `slow` answers a query as the slow path
    /// would, for the same view and source.
    pub fn fill(
        &mut self,
        generation: u64,
        packet: &[u8],
        query: &Query,
        response: &[u8],
        slow: impl Fn(&[u8]) -> Option<Vec<u8>>,
    ) {
        self.sync(generation);
        let end = query.question_end;
        let qualifies = response.len() <= MAX_CACHED
            && response.len() >= end
            && response[2] & (QR | AA | TC) == QR | AA
            && response[HEADER..end] == packet[HEADER..end];
        if !qualifies {
            return;
        }
        let tail = &response[end..];
        for fold in [u8::to_ascii_lowercase, u8::to_ascii_uppercase] {
            let mut variant = packet.to_vec();
            for b in &mut variant[HEADER..end - 4] {
                *b = fold(b);
            }
            let same = slow(&variant).is_some_and(|r| {
                r.len() == response.len()
                    && r[2..HEADER] == response[2..HEADER]
                    && r[end..] == *tail
            });
            if !same {
                return;
            }
        }
        if self.answers.len() >= CAPACITY {
            self.answers.clear();
        }
        let mut header = [0u8; HEADER - 2];
        header.copy_from_slice(&response[2..HEADER]);
        self.answers.insert(
            query.key().into(),
            Answer {
                header,
                tail: tail.into(),
            },
        );
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer_bytes;
    use crate::cluster::tests::endpoint;
    use hickory_proto::op::{Edns, Message, Query as Question};
    use hickory_proto::rr::{DNSClass, Name, RecordType};
    use podswarm_view::{Endpoint, Pod, Service, ServicePort, View};
    use proptest::prelude::*;
    use std::net::IpAddr;

    fn service(name: &str, endpoints: Vec<Endpoint>) -> Service {
        Service {
            namespace: "default".into(),
            name: name.into(),
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: "TCP".into(),
                port: 80,
            }],
            endpoints,
        }
    }

    /// `n` endpoints: at 16 bytes an A record, 26 of them fit 512 bytes with a few to spare, 27 do not.
    fn many(n: u8) -> Vec<Endpoint> {
        (0..n)
            .map(|i| endpoint(&format!("10.244.7.{i}"), true, 8080))
            .collect()
    }

    fn view(first_ip: &str) -> View {
        View {
            version: 3,
            cluster_domain: "cluster.local".into(),
            services: vec![
                service("edge", many(26)),
                service("over", many(30)),
                service(
                    "web",
                    vec![
                        endpoint(first_ip, true, 8080),
                        endpoint("10.244.2.7", true, 8080),
                        endpoint("fd00::5", true, 8080),
                    ],
                ),
            ],
            pods: vec![Pod {
                namespace: "default".into(),
                name: "web-0".into(),
                ip: Some(first_ip.parse().unwrap()),
                hostname: Some("web-0".into()),
                subdomain: Some("web".into()),
                node: "n1".into(),
            }],
            recursion_clients: vec!["127.0.0.0/8".parse().unwrap()],
            ..View::default()
        }
    }

    const NAMES: &[&str] = &[
        "web.default.svc.cluster.local.",
        "edge.default.svc.cluster.local.",
        "over.default.svc.cluster.local.",
        "nope.default.svc.cluster.local.",
        "web-0.web.default.svc.cluster.local.",
        "10-244-1-5.default.pod.cluster.local.",
        "_http._tcp.web.default.svc.cluster.local.",
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "cluster.local.",
        "www.example.com.",
    ];

    const TYPES: &[RecordType] = &[
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
        RecordType::SOA,
        RecordType::ANY,
        RecordType::TXT,
        RecordType::NS,
        RecordType::PTR,
    ];

    /// EDNS of a query: none, or (payload, DO).
    const EDNS: &[Option<(u16, bool)>] = &[
        None,
        Some((1232, false)),
        Some((4096, true)),
        Some((512, false)),
        Some((100, true)),
    ];

    fn src() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    /// `name` with letters in upper case where `mask` has a bit set (bit i for byte i, cycling).
    fn cased(name: &str, mask: u64) -> String {
        name.bytes()
            .enumerate()
            .map(|(i, b)| {
                if mask >> (i % 64) & 1 == 1 {
                    b.to_ascii_uppercase() as char
                } else {
                    b as char
                }
            })
            .collect()
    }

    fn query(
        name: &str,
        qtype: RecordType,
        edns: Option<(u16, bool)>,
        id: u16,
        flags: u8,
    ) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = id;
        m.metadata.recursion_desired = flags & 1 != 0;
        m.metadata.authentic_data = flags & 2 != 0;
        m.metadata.checking_disabled = flags & 4 != 0;
        m.add_query(Question::query(Name::from_ascii(name).unwrap(), qtype));
        if let Some((payload, dnssec_ok)) = edns {
            let mut e = Edns::new();
            e.set_max_payload(payload);
            e.set_dnssec_ok(dnssec_ok);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    /// What the UDP loop does with a packet: a hit, or the slow path and a fill.
    fn serve(
        cache: &mut PacketCache,
        generation: u64,
        view: &View,
        packet: &[u8],
    ) -> (Option<Vec<u8>>, bool) {
        let parsed = Query::parse(packet);
        if let Some(q) = &parsed {
            let mut out = Vec::new();
            if cache.answer(generation, packet, q, &mut out) {
                return (Some(out), true);
            }
        }
        let slow = answer_bytes(view, packet, src());
        if let (Some(q), Some(response)) = (&parsed, &slow) {
            cache.fill(generation, packet, q, response, |p| {
                answer_bytes(view, p, src())
            });
        }
        (slow, false)
    }

    #[test]
    fn hits_are_the_slow_paths_bytes_for_every_name_type_edns_case_and_flag() {
        let v = view("10.244.1.5");
        let mut cache = PacketCache::default();
        let mut hits = 0;
        let mut total = 0;
        for name in NAMES {
            for &qtype in TYPES {
                for &edns in EDNS {
                    for (round, mask) in [0, u64::MAX, 0x5555_5555_5555_5555, 0x0f0f_3c3c_a5a5_9696]
                        .into_iter()
                        .enumerate()
                    {
                        let flags = (round as u8 * 3) & 7;
                        let packet = query(&cased(name, mask), qtype, edns, 1000 + total, flags);
                        let (served, hit) = serve(&mut cache, 1, &v, &packet);
                        assert_eq!(
                            served,
                            answer_bytes(&v, &packet, src()),
                            "{name} {qtype} {edns:?} mask {mask:x} flags {flags} (hit: {hit})"
                        );
                        hits += usize::from(hit);
                        total += 1;
                    }
                }
            }
        }
        // Every case variant after the first of an A, AAAA or negative answer is a hit.
        assert!(hits > usize::from(total) / 3, "{hits} hits of {total}");
    }

    #[test]
    fn what_the_cache_takes_and_leaves() {
        let v = view("10.244.1.5");
        let mut cache = PacketCache::default();
        let kept = |cache: &mut PacketCache, name: &str, qtype, edns| {
            let before = cache.len();
            let packet = query(name, qtype, edns, 1, 1);
            serve(cache, 1, &v, &packet);
            cache.len() > before
        };
        // Positive, NXDOMAIN and NODATA cluster answers, with and without EDNS.
        assert!(kept(
            &mut cache,
            "web.default.svc.cluster.local.",
            RecordType::A,
            None
        ));
        assert!(kept(
            &mut cache,
            "web.default.svc.cluster.local.",
            RecordType::A,
            Some((1232, false))
        ));
        assert!(kept(
            &mut cache,
            "nope.default.svc.cluster.local.",
            RecordType::A,
            None
        ));
        assert!(kept(
            &mut cache,
            "web.default.svc.cluster.local.",
            RecordType::TXT,
            None
        ));
        assert!(kept(
            &mut cache,
            "edge.default.svc.cluster.local.",
            RecordType::A,
            None
        ));
        assert!(kept(
            &mut cache,
            "_http._tcp.web.default.svc.cluster.local.",
            RecordType::SRV,
            None
        ));
        // Not: an answer over 512 bytes (truncated for some clients), a refusal.
        assert!(!kept(
            &mut cache,
            "over.default.svc.cluster.local.",
            RecordType::A,
            None
        ));
        assert!(!kept(&mut cache, "www.example.org.", RecordType::A, None));
    }

    #[test]
    fn a_view_swap_leaves_no_stale_answer() {
        let (old, new) = (view("10.244.1.5"), view("10.244.9.9"));
        let mut cache = PacketCache::default();
        let packet = query("web.default.svc.cluster.local.", RecordType::A, None, 7, 1);
        serve(&mut cache, 1, &old, &packet);
        assert!(
            serve(&mut cache, 1, &old, &packet).1,
            "kept for its generation"
        );
        let (served, hit) = serve(&mut cache, 2, &new, &packet);
        assert!(!hit);
        assert_eq!(served, answer_bytes(&new, &packet, src()));
        assert_ne!(served, answer_bytes(&old, &packet, src()));
    }

    #[test]
    fn a_flood_of_random_names_cannot_grow_the_cache() {
        let v = view("10.244.1.5");
        let mut cache = PacketCache::default();
        for i in 0..CAPACITY * 2 + 10 {
            let packet = query(
                &format!("r{i}.default.svc.cluster.local."),
                RecordType::A,
                None,
                1,
                1,
            );
            serve(&mut cache, 1, &v, &packet);
            assert!(cache.len() <= CAPACITY);
        }
        assert!(!cache.is_empty());
    }

    #[test]
    fn unusual_queries_take_the_slow_path() {
        let plain = query("web.default.svc.cluster.local.", RecordType::A, None, 1, 1);
        assert!(Query::parse(&plain).is_some());
        let with_edns = query(
            "web.default.svc.cluster.local.",
            RecordType::A,
            Some((1232, true)),
            1,
            1,
        );
        assert!(Query::parse(&with_edns).is_some());
        let patched = |at: usize, value: u8| {
            let mut p = plain.clone();
            p[at] = value;
            p
        };
        // Opcode, TC, a response, Z, RCODE, counts.
        for p in [
            patched(2, 0x08),
            patched(2, 0x02),
            patched(2, 0x80),
            patched(3, 0x40),
            patched(3, 0x01),
        ] {
            assert!(Query::parse(&p).is_none());
        }
        for (at, count) in [(5, 2), (7, 1), (9, 1), (11, 2)] {
            assert!(Query::parse(&patched(at, count)).is_none());
        }
        // Trailing bytes; a truncated question.
        let mut long = plain.clone();
        long.push(0);
        assert!(Query::parse(&long).is_none());
        assert!(Query::parse(&plain[..plain.len() - 1]).is_none());
        // A compression pointer in the question.
        let mut pointer = plain[..HEADER].to_vec();
        pointer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert!(Query::parse(&pointer).is_none());
        // Class CH.
        let mut m = Message::query();
        let mut q = Question::query(Name::from_ascii("cluster.local.").unwrap(), RecordType::A);
        q.set_query_class(DNSClass::CH);
        m.add_query(q);
        assert!(Query::parse(&m.to_vec().unwrap()).is_none());
        // EDNS version 1; EDNS with an option; flags other than DO.
        let opt = with_edns.len() - OPT_LEN;
        let mut v1 = with_edns.clone();
        v1[opt + 6] = 1;
        assert!(Query::parse(&v1).is_none());
        let mut option = with_edns.clone();
        option[opt + 10] = 4;
        option.extend_from_slice(&[0, 10, 0, 0]);
        assert!(Query::parse(&option).is_none());
        let mut z = with_edns.clone();
        z[opt + 8] = 1;
        assert!(Query::parse(&z).is_none());
    }

    proptest! {
        #[test]
        fn any_case_id_flags_and_edns_gets_the_slow_paths_bytes(
            name in 0..NAMES.len(),
            qtype in 0..TYPES.len(),
            edns in 0..EDNS.len(),
            masks in proptest::collection::vec(any::<u64>(), 1..6),
            id in any::<u16>(),
            flags in 0u8..8,
        ) {
            let v = view("10.244.1.5");
            let mut cache = PacketCache::default();
            for mask in masks {
                let packet = query(&cased(NAMES[name], mask), TYPES[qtype], EDNS[edns], id, flags);
                let (served, _) = serve(&mut cache, 1, &v, &packet);
                prop_assert_eq!(served, answer_bytes(&v, &packet, src()));
            }
        }
    }
}
