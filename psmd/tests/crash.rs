//! Crash safety: psmd is killed with SIGKILL at random moments while an
//! application imports, deletes and re-trusts certificates and changes the
//! token password. After every kill the database must pass
//! `PRAGMA integrity_check`, every certificate must be in the state the
//! application was told (or the one its in-flight request asked for), and
//! the token must open with the old or the new password, never neither,
//! with every key still decrypting.

mod common;

use common::certs::{Spec, ca, make};
use common::{RuntimeDir, spawn_psmd_in, wait_until};
use psm::proto::{TRUST_CA_EMAIL, TRUST_PEER_EMAIL, TRUST_PEER_TLS};
use psm::{Client, ConnectFlags};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// At least this many kills, and more until enough requests have run
/// (a slow machine gets more rounds rather than a weaker test).
const MIN_ROUNDS: usize = 12;
const MAX_ROUNDS: usize = 80;
const TARGET_ACKED: usize = 300;
const LEAVES: usize = 40;

#[derive(Clone, Debug)]
enum Op {
    Import(usize, u32),
    Trust(usize, u32),
    Delete(usize),
    Password(String),
}

#[derive(Default)]
struct Model {
    /// Acknowledged state: leaf index -> trust.
    certs: HashMap<usize, u32>,
    password: String,
    /// The request in flight when psmd died, if any.
    pending: Option<Op>,
    /// Requests acknowledged so far.
    acked: usize,
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).unwrap();
    u32::from_le_bytes(b)
}

fn run_ops(c: &Client, model: &Arc<Mutex<Model>>, shas: &[String], ders: &[Vec<u8>], round: usize) {
    let trusts = [0, TRUST_PEER_EMAIL, TRUST_PEER_TLS | TRUST_CA_EMAIL, TRUST_PEER_TLS];
    for step in 0.. {
        let i = random_u32() as usize % LEAVES;
        let op = {
            let m = model.lock().unwrap();
            if step % 25 == 7 {
                Op::Password(format!("pw-{round}-{step}"))
            } else {
                match (m.certs.contains_key(&i), random_u32() % 3) {
                    (false, _) => Op::Import(i, trusts[random_u32() as usize % 4]),
                    (true, 0) => Op::Delete(i),
                    (true, _) => Op::Trust(i, trusts[random_u32() as usize % 4]),
                }
            }
        };
        model.lock().unwrap().pending = Some(op.clone());
        let result = match &op {
            Op::Import(i, t) => c.cert_import(&ders[*i], None, *t).map(|_| ()),
            Op::Trust(i, t) => {
                c.cert_change_trust(&shas[*i], *t, !*t & psm::proto::TRUST_ALL_BITS).map(|_| ())
            }
            Op::Delete(i) => c.cert_delete(&shas[*i], false),
            Op::Password(new) => {
                let old = model.lock().unwrap().password.clone();
                c.token_set_password(Some(&old), Some(new))
            }
        };
        if result.is_err() {
            return; // psmd is gone; `pending` stays as it was sent
        }
        let mut m = model.lock().unwrap();
        match op {
            Op::Import(i, t) | Op::Trust(i, t) => {
                m.certs.insert(i, t);
            }
            Op::Delete(i) => {
                m.certs.remove(&i);
            }
            Op::Password(p) => m.password = p,
        }
        m.pending = None;
        m.acked += 1;
    }
}

#[test]
fn sigkill_at_random_moments_leaves_every_object_old_or_new() {
    let rt = RuntimeDir::new();
    let root = ca("Crash Root");
    let names: Vec<String> = (0..LEAVES).map(|i| format!("leaf {i}")).collect();
    let leaves: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| make(&Spec { cn: n, serial: 100 + i as u32, ..Default::default() }, Some(&root)))
        .collect();
    let ders: Vec<Vec<u8>> = leaves.iter().map(|l| l.der()).collect();
    let shas: Vec<String> = leaves.iter().map(|l| l.sha256_hex()).collect();
    let model = Arc::new(Mutex::new(Model::default()));
    let flags = ConnectFlags { no_spawn: true, no_dialogs: true };
    let mut total_ops = 0usize;

    let mut rounds = 0;
    for round in 0..MAX_ROUNDS {
        rounds += 1;
        let mut child = common::Reaped(spawn_psmd_in(&rt, &[], None));
        wait_until("psmd is up", || Client::connect_to(&rt.socket(), "crash", flags).is_ok());
        let c = Client::connect_to(&rt.socket(), "crash", flags).unwrap();
        if round == 0 {
            // One key in the token, so that decryption is checked too.
            let csr = c.key_generate(psm::proto::KeyKind::EcP256, "CN=crash key", None, &[]).unwrap();
            assert!(!csr.is_empty());
        }
        let password = model.lock().unwrap().password.clone();
        if !password.is_empty() {
            c.token_login(Some(&password)).unwrap();
        }
        let before = model.lock().unwrap().certs.len();
        let (m, c2, shas2, ders2) = (model.clone(), c.clone(), shas.clone(), ders.clone());
        let worker = std::thread::spawn(move || run_ops(&c2, &m, &shas2, &ders2, round));
        std::thread::sleep(std::time::Duration::from_millis(50 + u64::from(random_u32() % 400)));
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        worker.join().unwrap();
        total_ops += before.abs_diff(model.lock().unwrap().certs.len());

        // Inspect the store as psmd left it.
        let store = psmd::store::Store::open(&rt.profile()).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok", "round {round}");
        let mut m = model.lock().unwrap();
        let pending = m.pending.take();
        for (i, sha) in shas.iter().enumerate() {
            let fp = psmd::store::parse_fingerprint(sha).unwrap();
            let actual = store.get(&fp).ok().map(|info| info.trust);
            let acked = m.certs.get(&i).copied();
            let after_pending = match &pending {
                Some(Op::Import(j, t)) | Some(Op::Trust(j, t)) if *j == i => Some(Some(*t)),
                Some(Op::Delete(j)) if *j == i => Some(None),
                _ => None,
            };
            assert!(
                actual == acked || Some(actual) == after_pending,
                "round {round}, leaf {i}: store has {actual:?}, acknowledged {acked:?}, in flight {after_pending:?}"
            );
            // Adopt what psmd actually kept.
            match actual {
                Some(t) => m.certs.insert(i, t),
                None => m.certs.remove(&i),
            };
        }
        let row = store.token().unwrap().unwrap();
        let mut candidates = vec![m.password.clone()];
        if let Some(Op::Password(new)) = &pending {
            candidates.push(new.clone());
        }
        let opened: Vec<_> = candidates
            .iter()
            .filter_map(|pw| row.unlock(pw).unwrap().map(|master| (pw.clone(), master)))
            .collect();
        assert_eq!(opened.len(), 1, "round {round}: exactly one of old/new password opens the token");
        let (pw, master) = &opened[0];
        m.password = pw.clone();
        let keys = store.key_rows().unwrap();
        assert_eq!(keys.len(), 1);
        for k in &keys {
            k.open(master).expect("every key decrypts under the surviving password");
        }
        if round + 1 >= MIN_ROUNDS && m.acked >= TARGET_ACKED {
            break;
        }
    }
    let acked = model.lock().unwrap().acked;
    eprintln!(
        "crash test: {rounds} kills, {acked} acknowledged requests, {total_ops} net certificate changes"
    );
    assert!(
        acked >= TARGET_ACKED,
        "only {acked} requests ran in {rounds} rounds; the test exercised too little"
    );
}
