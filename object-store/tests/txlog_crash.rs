//! Crash simulation of the transaction log (`abi::txlog`): a random sequence of transactions
//! over three objects runs on simulated memory that records every 8-byte store, flush and fence;
//! the run is "crashed" after any store, recovered, and every transaction must then be all or
//! nothing, with every commit that returned present.
//!
//! Two crash models:
//! - process crash (guest or VMM killed): stores up to the cut survive, in program order (the
//!   words of one `write` in a random order, as `memcpy` may store them);
//! - power loss (durable modes only): each word keeps any value it held since it was last made
//!   durable (flushed, then fenced), independently of its neighbours, so unflushed writes may
//!   be lost or torn at any 8-byte boundary.

use std::collections::{BTreeMap, HashMap, HashSet};

use abi::boot::durability;
use abi::id::ObjId;
use abi::layout::BASE_OFFSET;
use abi::txlog::{self, ObjectMemory, Tx};
use proptest::prelude::*;

const OBJS: [ObjId; 3] = [
    ObjId::from_u128(0xa1),
    ObjId::from_u128(0xb2),
    ObjId::from_u128(0xc3),
];
/// Data words per object the workload updates.
const WORDS: usize = 8;

type Word = (ObjId, u64);

#[derive(Clone, Debug)]
enum Event {
    Store(Word, u64),
    Flush(ObjId, u64, u64),
    Fence,
}

/// A tiny deterministic generator (xorshift64*), so a failing case replays exactly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Word-addressed memory that records what happens to it.
struct Sim {
    words: HashMap<Word, u64>,
    events: Vec<Event>,
    rng: Rng,
}

impl Sim {
    fn new(image: HashMap<Word, u64>, seed: u64) -> Sim {
        Sim {
            words: image,
            events: Vec::new(),
            rng: Rng(seed | 1),
        }
    }

    fn word(&self, w: Word) -> u64 {
        self.words.get(&w).copied().unwrap_or(0)
    }

    fn data(&self) -> Vec<u64> {
        OBJS.iter()
            .flat_map(|&o| (0..WORDS).map(move |i| (o, BASE_OFFSET + 8 * i as u64)))
            .map(|w| self.word(w))
            .collect()
    }
}

impl ObjectMemory for Sim {
    type Error = std::convert::Infallible;

    fn read(&mut self, obj: ObjId, off: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        for (i, b) in buf.iter_mut().enumerate() {
            let a = off + i as u64;
            *b = self.word((obj, a & !7)).to_le_bytes()[(a & 7) as usize];
        }
        Ok(())
    }

    fn write(&mut self, obj: ObjId, off: u64, data: &[u8]) -> Result<(), Self::Error> {
        let mut touched: Vec<u64> = Vec::new();
        for (i, &b) in data.iter().enumerate() {
            let a = off + i as u64;
            let w = (obj, a & !7);
            let mut bytes = self.word(w).to_le_bytes();
            bytes[(a & 7) as usize] = b;
            self.words.insert(w, u64::from_le_bytes(bytes));
            if touched.last() != Some(&(a & !7)) {
                touched.push(a & !7);
            }
        }
        // memcpy may store the words of one copy in any order.
        for i in (1..touched.len()).rev() {
            let j = self.rng.below(i + 1);
            touched.swap(i, j);
        }
        for a in touched {
            let v = self.word((obj, a));
            self.events.push(Event::Store((obj, a), v));
        }
        Ok(())
    }

    fn flush(&mut self, obj: ObjId, off: u64, len: u64) -> Result<(), Self::Error> {
        self.events.push(Event::Flush(obj, off, len));
        Ok(())
    }

    fn fence(&mut self) -> Result<(), Self::Error> {
        self.events.push(Event::Fence);
        Ok(())
    }
}

/// The memory left after a crash following the first `cut` events of a run that started from
/// `start`.
fn crash_image(
    start: &HashMap<Word, u64>,
    events: &[Event],
    cut: usize,
    power_loss: bool,
    rng: &mut Rng,
) -> HashMap<Word, u64> {
    let mut image = start.clone();
    if !power_loss {
        for e in &events[..cut] {
            if let Event::Store(w, v) = e {
                image.insert(*w, *v);
            }
        }
        return image;
    }
    /// A word's durable value, the values it took since, and a flush waiting for a fence.
    struct W {
        base: u64,
        since: Vec<u64>,
        cur: u64,
        flushed: Option<(u64, usize)>,
    }
    // Ordered, so the random choices below replay exactly for a seed.
    let mut ws: BTreeMap<Word, W> = BTreeMap::new();
    let mut waiting: HashSet<Word> = HashSet::new();
    for e in &events[..cut] {
        match e {
            Event::Store(w, v) => {
                let init = start.get(w).copied().unwrap_or(0);
                let s = ws.entry(*w).or_insert(W {
                    base: init,
                    since: Vec::new(),
                    cur: init,
                    flushed: None,
                });
                s.since.push(*v);
                s.cur = *v;
            }
            Event::Flush(obj, off, len) => {
                let end = off + len;
                for (w, s) in ws.iter_mut() {
                    if w.0 == *obj && w.1 + 8 > *off && w.1 < end {
                        s.flushed = Some((s.cur, s.since.len()));
                        waiting.insert(*w);
                    }
                }
            }
            Event::Fence => {
                for w in waiting.drain() {
                    if let Some(s) = ws.get_mut(&w) {
                        if let Some((v, n)) = s.flushed.take() {
                            s.base = v;
                            s.since.drain(..n);
                        }
                    }
                }
            }
        }
    }
    for (w, s) in ws {
        let pick = rng.below(s.since.len() + 1);
        let v = if pick == 0 { s.base } else { s.since[pick - 1] };
        image.insert(w, v);
    }
    image
}

/// One transaction of the workload: (object, first word, words, value) updates, then commit or
/// abort.
#[derive(Clone, Debug)]
struct TxSpec {
    anchor: usize,
    ops: Vec<(usize, usize, usize, u64)>,
    commit: bool,
}

/// What the run produced: its events, and per transaction the event count when it began and
/// when its commit/abort returned, plus the data after every transaction (`states[0]` = before).
struct Run {
    events: Vec<Event>,
    spans: Vec<(usize, usize)>,
    states: Vec<Vec<u64>>,
}

fn run(start: &HashMap<Word, u64>, txs: &[TxSpec], mode: u32, seed: u64) -> Run {
    let mut sim = Sim::new(start.clone(), seed);
    let mut spans = Vec::new();
    let mut states = vec![sim.data()];
    for t in txs {
        let start = sim.events.len();
        let before = sim.words.clone();
        let anchor = OBJS[t.anchor];
        let mut tx = Tx::begin(&mut sim, anchor, mode).expect("begin");
        for &(o, w, n, v) in &t.ops {
            let n = n.min(WORDS - w);
            let off = BASE_OFFSET + 8 * w as u64;
            tx.record(&mut sim, OBJS[o], off, 8 * n as u64)
                .expect("record");
            let bytes: Vec<u8> = (0..n)
                .flat_map(|i| v.wrapping_add(i as u64).to_le_bytes())
                .collect();
            sim.write(OBJS[o], off, &bytes).expect("write");
        }
        if t.commit {
            tx.commit(&mut sim).expect("commit");
        } else {
            tx.abort(&mut sim).expect("abort");
            let after = sim.data();
            assert_eq!(after, Sim::new(before, 0).data(), "abort restored the data");
        }
        spans.push((start, sim.events.len()));
        states.push(sim.data());
    }
    Run {
        events: sim.events,
        spans,
        states,
    }
}

/// Recovers every object the way the store does when it opens them: its own log, then what its
/// marker points at.
fn recover_all(sim: &mut Sim, order: &[usize]) {
    for &i in order {
        txlog::recover_anchor(sim, OBJS[i], true).expect("recover anchor");
        txlog::recover_marker(sim, OBJS[i], true).expect("recover marker");
    }
}

/// Which whole-transaction states are acceptable after a crash at `cut`: from the last
/// transaction guaranteed to have taken effect durably to the last one begun.
fn acceptable(r: &Run, cut: usize, power_loss: bool) -> std::ops::RangeInclusive<usize> {
    let durable_upto = if power_loss {
        // Everything before the last fence (inclusive) is on the media.
        r.events[..cut]
            .iter()
            .rposition(|e| matches!(e, Event::Fence))
            .map_or(0, |f| f + 1)
    } else {
        cut
    };
    let lo = r.spans.iter().filter(|s| s.1 <= durable_upto).count();
    let hi = r.spans.iter().filter(|s| s.0 < cut).count();
    lo..=hi.max(lo)
}

/// Runs `txs` from `start`, crashes at `cut_frac` of its events, recovers (a random subset of
/// the objects unless `all`), checks, and returns the memory after recovery.
#[allow(clippy::too_many_arguments)]
fn check_crash(
    start: &HashMap<Word, u64>,
    txs: &[TxSpec],
    mode: u32,
    cut_frac: f64,
    power_loss: bool,
    seed: u64,
    recovery_crash: Option<(f64, bool)>,
    all: bool,
) -> Result<HashMap<Word, u64>, TestCaseError> {
    let r = run(start, txs, mode, seed);
    let cut = ((r.events.len() + 1) as f64 * cut_frac) as usize;
    let cut = cut.min(r.events.len());
    let mut rng = Rng(seed ^ 0x5eed);
    let image = crash_image(start, &r.events, cut, power_loss, &mut rng);
    // Open (and so recover) a random non-empty subset of the objects, in random order: each
    // opened object must be consistent on its own, whatever was not opened.
    let mut order = vec![0, 1, 2];
    for i in (1..3).rev() {
        order.swap(i, rng.below(i + 1));
    }
    if !all {
        order.truncate(1 + rng.below(3));
    }
    let mut sim = Sim::new(image.clone(), seed ^ 1);
    recover_all(&mut sim, &order);
    if let Some((frac, pl)) = recovery_crash {
        // Crash again while recovering, then recover from that.
        let rcut = ((sim.events.len() + 1) as f64 * frac) as usize;
        let again = crash_image(
            &image,
            &sim.events,
            rcut.min(sim.events.len()),
            pl,
            &mut rng,
        );
        sim = Sim::new(again, seed ^ 2);
        recover_all(&mut sim, &order);
    }
    let opened = |data: &[u64]| -> Vec<u64> {
        order
            .iter()
            .flat_map(|&o| data[o * WORDS..(o + 1) * WORDS].to_vec())
            .collect()
    };
    let got = opened(&sim.data());
    let ok = acceptable(&r, cut, power_loss);
    prop_assert!(
        ok.clone().any(|j| opened(&r.states[j]) == got),
        "after a crash at event {cut}/{} (power loss: {power_loss}), objects {order:?} hold \
         {got:?}, none of the states {ok:?}: {:?}",
        r.events.len(),
        &r.states[*ok.start()..=*ok.end()]
    );
    for &o in &order {
        let st = txlog::plan(&mut sim, OBJS[o]).expect("plan");
        prop_assert_eq!(st.pending, None, "log of {} still pending", OBJS[o]);
        prop_assert!(txlog::read_marker(&mut sim, OBJS[o])
            .expect("marker")
            .is_clear());
    }
    Ok(sim.words)
}

fn tx_strategy() -> impl Strategy<Value = TxSpec> {
    (
        0..3usize,
        proptest::collection::vec((0..3usize, 0..WORDS, 1..3usize, any::<u64>()), 1..5),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(anchor, ops, commit)| TxSpec {
            anchor,
            ops,
            commit,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(768))]

    #[test]
    fn every_transaction_is_all_or_nothing_after_a_crash(
        txs in proptest::collection::vec(tx_strategy(), 1..7),
        mode in prop_oneof![Just(durability::NONE), Just(durability::COMMIT), Just(durability::GROUP)],
        cut in 0.0..=1.0f64,
        power in any::<bool>(),
        seed in any::<u64>(),
        recovery_crash in proptest::option::of((0.0..1.0f64, any::<bool>())),
    ) {
        // Without flushes nothing is promised across a power loss.
        let power = power && mode != durability::NONE;
        let recovery_crash = recovery_crash.map(|(f, pl)| (f, pl && mode != durability::NONE));
        check_crash(&HashMap::new(), &txs, mode, cut, power, seed, recovery_crash, false)?;
    }

    /// Crash, recover, carry on from what recovery left, crash again: a log reused after a
    /// recovery must not bring back entries of the transaction before.
    #[test]
    fn a_second_crash_after_recovery_is_survived_too(
        txs in proptest::collection::vec(tx_strategy(), 1..5),
        more in proptest::collection::vec(tx_strategy(), 1..5),
        mode in prop_oneof![Just(durability::NONE), Just(durability::COMMIT), Just(durability::GROUP)],
        cuts in (0.0..=1.0f64, 0.0..=1.0f64),
        power in any::<(bool, bool)>(),
        seed in any::<u64>(),
    ) {
        let durable = mode != durability::NONE;
        let after = check_crash(&HashMap::new(), &txs, mode, cuts.0, power.0 && durable, seed, None, true)?;
        check_crash(&after, &more, mode, cuts.1, power.1 && durable, seed ^ 3, None, false)?;
    }
}

/// A fixed cross-object workload crashed after every single event, in every mode and model.
#[test]
fn crash_after_every_event_of_a_cross_object_workload() {
    let txs = vec![
        TxSpec {
            anchor: 0,
            ops: vec![(0, 0, 2, 10), (1, 3, 1, 20), (2, 7, 1, 30)],
            commit: true,
        },
        TxSpec {
            anchor: 1,
            ops: vec![(0, 0, 1, 40), (1, 3, 2, 50), (0, 0, 1, 41)],
            commit: false,
        },
        TxSpec {
            anchor: 1,
            ops: vec![(2, 6, 2, 60), (0, 1, 1, 70)],
            commit: true,
        },
        TxSpec {
            anchor: 0,
            ops: vec![(0, 0, 1, 80)],
            commit: true,
        },
    ];
    let mut cases = 0;
    for mode in [durability::NONE, durability::COMMIT, durability::GROUP] {
        let n = run(&HashMap::new(), &txs, mode, 7).events.len();
        for cut in 0..=n {
            for (power, seed) in [(false, 7), (true, 7), (true, 99), (true, 12345)] {
                if power && mode == durability::NONE {
                    continue;
                }
                let frac = cut as f64 / (n + 1) as f64 + 1e-9;
                check_crash(&HashMap::new(), &txs, mode, frac, power, seed, None, false)
                    .unwrap_or_else(|e| panic!("mode {mode}, cut {cut}: {e}"));
                cases += 1;
            }
        }
    }
    assert!(cases > 300, "only {cases} crash points");
}

/// Two crashes, each after every possible event: the log of one anchor is reused right after a
/// recovery, with transactions whose entries line up with the ones before.
#[test]
fn crash_twice_at_every_pair_of_events() {
    let tx = |ops: Vec<(usize, usize, usize, u64)>| TxSpec {
        anchor: 0,
        ops,
        commit: true,
    };
    let first = vec![
        tx(vec![(0, 0, 1, 10), (0, 1, 1, 11), (1, 2, 1, 12)]),
        tx(vec![(0, 0, 1, 20), (0, 1, 1, 21)]),
    ];
    let second = vec![tx(vec![(0, 0, 1, 30), (0, 1, 1, 31), (1, 2, 1, 32)])];
    let mut cases = 0;
    for mode in [durability::COMMIT, durability::GROUP] {
        let n1 = run(&HashMap::new(), &first, mode, 1).events.len();
        for cut1 in 0..=n1 {
            for seed in [2u64, 4] {
                let f1 = cut1 as f64 / (n1 + 1) as f64 + 1e-9;
                let after = check_crash(&HashMap::new(), &first, mode, f1, true, seed, None, true)
                    .unwrap_or_else(|e| panic!("mode {mode}, first cut {cut1}: {e}"));
                let n2 = run(&after, &second, mode, seed).events.len();
                for cut2 in 0..=n2 {
                    let f2 = cut2 as f64 / (n2 + 1) as f64 + 1e-9;
                    check_crash(&after, &second, mode, f2, true, seed ^ 9, None, true)
                        .unwrap_or_else(|e| {
                            panic!("mode {mode}, cuts {cut1} then {cut2}, seed {seed}: {e}")
                        });
                    cases += 1;
                }
            }
        }
    }
    assert!(cases > 500, "only {cases} crash pairs");
}
