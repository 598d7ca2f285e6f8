//! The queue and the inference worker: one OS thread owns the model; the
//! HTTP side sends it jobs through a bounded channel and awaits each
//! job's answer on a oneshot, so it never blocks on inference.
//!
//! The worker takes what is queued, up to a budget of tokens, and runs
//! the inputs of every request asking the same options as ONE call of
//! [`LoadedModel::run_texts`]: the length-aware batcher sorts them across
//! requests (a 3-token query no longer pays for a 300-token neighbour, as
//! TEI's first-in-first-out batches padded to their longest make it), and
//! each request gets back its own slice of the answers, in its input
//! order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::metrics::Metrics;
use super::options::Gate;
use crate::run::{Answered, Cut, LoadedModel, RunError, Task, TaskOptions};
use crate::tokenize::TextInput;

/// Inputs owned by their job: a text and its pair (a cross-encoder's
/// second text, a question's context).
pub type Inputs = Vec<(String, Option<String>)>;

/// One request's work.
pub struct Job {
    pub inputs: Inputs,
    pub options: TaskOptions,
    /// Its tokens, as the model reads them (cut at the limit).
    pub tokens: usize,
    pub reply: oneshot::Sender<Result<Answered, RunError>>,
}

/// Runs of the token budget the worker gathers before a call: enough for
/// the batcher to sort several batches' worth of queued inputs by
/// length, few enough that the first request of a burst is not held
/// behind the whole burst.
const GATHERED_BATCHES: usize = 4;

/// What the worker thread needs besides its model and queue.
pub struct WorkerContext {
    pub metrics: Arc<Metrics>,
    /// Set once the model has answered its warm-up input.
    pub ready: Arc<AtomicBool>,
    pub gate: Option<Gate>,
}

/// Runs the warm-up input, then every job until the queue's senders are
/// all gone (the server stopped and every accepted request was sent).
/// Whether the warm-up input was answered is told on `warmed`; its
/// failure ends the worker, returned.
pub fn work(
    mut model: LoadedModel,
    mut queue: mpsc::Receiver<Job>,
    context: WorkerContext,
    warmed: oneshot::Sender<bool>,
) -> Result<(), RunError> {
    let warm_up = warm_up(&mut model);
    context.ready.store(warm_up.is_ok(), Ordering::SeqCst);
    let _ = warmed.send(warm_up.is_ok());
    warm_up?;
    let budget = model.limits.max_tokens.saturating_mul(GATHERED_BATCHES);
    while let Some(first) = queue.blocking_recv() {
        context.metrics.queued.fetch_sub(1, Ordering::Relaxed);
        let mut tokens = first.tokens;
        let mut jobs = vec![first];
        while tokens < budget {
            match queue.try_recv() {
                Ok(job) => {
                    context.metrics.queued.fetch_sub(1, Ordering::Relaxed);
                    tokens += job.tokens;
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        if let Some(gate) = &context.gate {
            gate.pass();
        }
        for group in by_options(jobs) {
            run_together(&mut model, group, &context.metrics);
        }
    }
    Ok(())
}

/// One input the model's task answers, run once before the server is
/// ready: the runtime's first call optimizes plans and allocates, and a
/// model that cannot run at all is found before any client is answered.
fn warm_up(model: &mut LoadedModel) -> Result<(), RunError> {
    let mask = model
        .tokenizer
        .special
        .mask
        .and_then(|id| model.tokenizer.id_to_token(id))
        .unwrap_or_default();
    let text = format!("Warming up the {mask} model.");
    let input = match model.task {
        Task::QuestionAnswering => TextInput::Pair("What is warming up?", &text),
        _ => TextInput::Single(&text),
    };
    model
        .run_texts(&[input], &TaskOptions::default(), &mut |_| {})
        .map(|_| ())
}

/// Jobs grouped by their options, groups in order of their first job.
fn by_options(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: Vec<Vec<Job>> = vec![];
    for job in jobs {
        match groups.iter_mut().find(|g| g[0].options == job.options) {
            Some(group) => group.push(job),
            None => groups.push(vec![job]),
        }
    }
    groups
}

/// One call for every input of `jobs`, each job answered with its own
/// part. When the call fails and held several jobs, each runs again
/// alone: one request's bad input must not fail its neighbours.
fn run_together(model: &mut LoadedModel, jobs: Vec<Job>, metrics: &Metrics) {
    let inputs: Vec<TextInput> = jobs
        .iter()
        .flat_map(|j| j.inputs.iter())
        .map(|(text, pair)| match pair {
            Some(p) => TextInput::Pair(text, p),
            None => TextInput::Single(text),
        })
        .collect();
    let started = Instant::now();
    let result = model.run_texts(&inputs, &jobs[0].options, &mut |_| {});
    let tokens = jobs.iter().map(|j| j.tokens).sum();
    metrics.run(inputs.len(), tokens, started.elapsed());
    drop(inputs);
    match result {
        Ok(Answered { mut outputs, cut }) => {
            let mut first = 0;
            for job in jobs {
                let n = job.inputs.len();
                let part = Answered {
                    outputs: outputs.split_front(n),
                    cut: cuts_within(&cut, first, n),
                };
                first += n;
                // A client gone meanwhile no longer waits for its answer.
                let _ = job.reply.send(Ok(part));
            }
        }
        Err(_) if jobs.len() > 1 => {
            for job in jobs {
                run_together(model, vec![job], metrics);
            }
        }
        Err(e) => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.reply.send(Err(e));
            }
        }
    }
}

/// The cuts of inputs `first..first + n`, numbered from 0 in that range.
fn cuts_within(cuts: &[Cut], first: usize, n: usize) -> Vec<Cut> {
    cuts.iter()
        .filter(|c| (first..first + n).contains(&c.input))
        .map(|c| Cut {
            input: c.input - first,
            ..c.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(top_k: Option<usize>) -> Job {
        Job {
            inputs: vec![],
            options: TaskOptions {
                top_k: top_k.map(crate::run::TopK::Best),
                ..Default::default()
            },
            tokens: 0,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn jobs_asking_the_same_run_together_in_order() {
        let groups = by_options(vec![
            job(None),
            job(Some(2)),
            job(None),
            job(Some(2)),
            job(Some(3)),
        ]);
        let tops: Vec<Vec<Option<crate::run::TopK>>> = groups
            .iter()
            .map(|g| g.iter().map(|j| j.options.top_k).collect())
            .collect();
        use crate::run::TopK::Best;
        assert_eq!(
            tops,
            [
                vec![None, None],
                vec![Some(Best(2)), Some(Best(2))],
                vec![Some(Best(3))]
            ]
        );
    }

    #[test]
    fn cuts_are_renumbered_within_their_job() {
        let cut = |input| Cut {
            input,
            tokens: 8,
            chars: None,
        };
        let all = [cut(0), cut(3), cut(4), cut(7)];
        let inputs: Vec<usize> = cuts_within(&all, 3, 2).iter().map(|c| c.input).collect();
        assert_eq!(inputs, [0, 1]);
        assert!(cuts_within(&all, 5, 2).is_empty());
    }
}
