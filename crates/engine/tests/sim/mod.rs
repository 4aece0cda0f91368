//! A seeded simulation of several replicas and a cloud that checks the promise "every edit
//! ends in one place" after every step (see `check`), and convergence once the cloud
//! quiesces. Seeds run on two threads; `TETHER_SIM_SEEDS=N` runs N seeds (default 10,000),
//! `TETHER_SIM_SEED=N` runs seed N alone and prints its step log.

mod check;
mod net;
mod subs;
mod world;

use std::sync::Mutex;
use std::time::Instant;

use world::{run_seed, Book, Figures};

/// Fault and step kinds that must each have happened in a default run.
const KINDS: &[&str] = &[
    "edit",
    "cloud-write",
    "replica-restart",
    "server-restart",
    "reset",
    "410",
    "verify",
    "verify-repair",
    "repaired",
    "full-resync",
    "conflict",
    "drop",
    "duplicate",
    "reorder",
    "truncate",
    "crash",
    "edit-during-pull",
    "push-dropped",
    "edit-before-push",
    "cloud-write-before-push",
    "push-duplicated",
    "edit-after-push",
    "concurrent-sync",
    "cloud-write-after-push",
    "push-answer-lost",
    "cloned-replica",
    "subscribe-set",
    "subscribe-add",
    "subscribe-remove",
    "subscribe-narrow",
    "subscribe-widen",
    "subscribe-whole",
    "subscribe-during-pull",
    "subscribe-during-push",
    "subset-marker-lost",
    "verify-partial-pending",
];

struct Outcome {
    figures: Figures,
    seen: Vec<&'static str>,
    failure: Option<(String, Vec<String>)>,
}

fn one(seed: u64) -> Outcome {
    let book = Mutex::new(Book::default());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_seed(seed, &book)));
    let book = book.into_inner().unwrap_or_else(|p| p.into_inner());
    let (figures, failure) = match result {
        Ok(Ok(f)) => (f, None),
        Ok(Err(msg)) => (Figures::default(), Some((msg, book.log))),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            (
                Figures::default(),
                Some((format!("panic: {msg}"), book.log)),
            )
        }
    };
    Outcome {
        figures,
        seen: book.seen,
        failure,
    }
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs the regressions, then the seeds; panics naming every failing seed with its log.
pub(crate) fn drive(regressions: &[u64]) {
    let started = Instant::now();
    if let Some(seed) = env("TETHER_SIM_SEED") {
        let out = one(seed);
        let book_log = match &out.failure {
            Some((msg, log)) => format!("{}\nFAILED: {msg}", log.join("\n")),
            None => "passed".into(),
        };
        println!("seed {seed}:\n{book_log}");
        assert!(out.failure.is_none(), "seed {seed} failed");
        return;
    }
    let count = env("TETHER_SIM_SEEDS").unwrap_or(10_000);
    let seeds: Vec<u64> = regressions.iter().copied().chain(1..=count).collect();
    let threads = 2;
    let outcomes: Vec<(u64, Outcome)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let seeds = &seeds;
                s.spawn(move || {
                    seeds
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|&seed| (seed, one(seed)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut total = Figures::default();
    let mut seen: std::collections::BTreeMap<&str, u64> = Default::default();
    let mut failed = Vec::new();
    for (seed, out) in &outcomes {
        total.steps += out.figures.steps;
        total.edits += out.figures.edits;
        total.checks += out.figures.checks;
        total.converged += out.figures.converged;
        total.partial += out.figures.partial;
        for s in &out.seen {
            *seen.entry(s).or_default() += 1;
        }
        if let Some((msg, log)) = &out.failure {
            println!("seed {seed} FAILED: {msg}\n{}\n", log.join("\n"));
            failed.push(*seed);
        }
    }
    println!(
        "simulation: {} seeds ({} regressions), {} steps, {} edits made, {} edit checks, \
         lost {}, {} replicas converged ({} of them partial), {:.1} s",
        seeds.len(),
        regressions.len(),
        total.steps,
        total.edits,
        total.checks,
        failed.len(),
        total.converged,
        total.partial,
        started.elapsed().as_secs_f64()
    );
    println!("kinds: {seen:?}");
    assert!(
        failed.is_empty(),
        "failing seeds (add them to REGRESSIONS): {failed:?}"
    );
    for kind in KINDS {
        assert!(
            seen.contains_key(kind),
            "no {kind} in {} seeds",
            seeds.len()
        );
    }
}
