//! The library inside another program: library calls leave the program's
//! process-wide state alone. A library write keeps the caller's own SIGINT
//! handler (the `bertc` binary installs its cleanup handlers itself); a
//! library call leaves tract's global executor as it was; two sessions with
//! different thread counts run models at once, each on its own threads.
//!
//! Its own test binary: it installs a SIGINT handler and raises SIGINT.

use std::sync::atomic::{AtomicUsize, Ordering};

use bertc::runtime::inputs_for;

use bertc::passes::Level;
use bertc::pipeline::{at_level, compile, load_config, BuildOptions, PipelineOptions};
use bertc::runtime::{NamedTensors, TractSession};
use bertc::source::{resolve, MissingWeights};
use bertc::Session;
use tract_linalg::multithread::{current_tract_executor, Executor};

/// How many SIGINTs the caller's handler took.
static CAUGHT: AtomicUsize = AtomicUsize::new(0);

extern "C" fn callers_handler(_: libc::c_int) {
    CAUGHT.fetch_add(1, Ordering::SeqCst);
}

/// Sets SIGINT's action to `handler`; returns the action it replaced.
fn set_sigint(action: &libc::sigaction) -> libc::sigaction {
    // SAFETY: a valid action for SIGINT (the test's handler only touches
    // an atomic, or the action saved from before).
    unsafe {
        let mut previous: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGINT, action, &mut previous), 0);
        previous
    }
}

/// SIGINT's handler now.
fn sigint_handler() -> libc::sighandler_t {
    // SAFETY: a null new action only reads the current one.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGINT, std::ptr::null(), &mut current), 0);
        current.sa_sigaction
    }
}

#[test]
fn a_library_write_keeps_the_callers_sigint_handler() {
    // SAFETY: a zeroed sigaction with its mask emptied is a valid action.
    let ours = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = callers_handler as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        action
    };
    let before = set_sigint(&ours);
    let session = Session::new(2).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = load_config("bert-tiny").unwrap();

    // The check writes the model to its temporary file early, then
    // `write_files` renames it into place.
    let model = dir.path().join("model.onnx");
    let early = PipelineOptions {
        output: Some(model.clone()),
        ..at_level(Level::O2)
    };
    let mut compiled = compile(&session, &config, BuildOptions::default(), &early).unwrap();
    compiled.write_files(&model).unwrap();
    assert!(model.is_file());

    // A model and its external data: the pair renamed as one step.
    let split = dir.path().join("split.onnx");
    let external = PipelineOptions {
        external_data: true,
        ..at_level(Level::O2)
    };
    let mut compiled = compile(&session, &config, BuildOptions::default(), &external).unwrap();
    let written = compiled.write_files(&split).unwrap();
    assert!(written.external_data.is_some() && split.is_file());

    // An export folder, staged in a temporary folder.
    let source = resolve("bert-tiny", None, None, true, MissingWeights::Random).unwrap();
    let folder = dir.path().join("export");
    bertc::export_folder::write_export_folder(&folder, &compiled, &source, &[]).unwrap();
    assert!(folder.join("model.onnx").is_file());

    assert_eq!(
        sigint_handler(),
        callers_handler as *const () as libc::sighandler_t,
        "a library write replaced the caller's SIGINT handler"
    );
    // SAFETY: raising a signal whose handler only counts.
    assert_eq!(unsafe { libc::raise(libc::SIGINT) }, 0);
    assert_eq!(
        CAUGHT.load(Ordering::SeqCst),
        1,
        "the caller's handler did not run"
    );
    set_sigint(&before);
}

/// The pool threads a session computes on, seen from inside tract's scope.
fn executor_threads(e: &Executor) -> usize {
    match e {
        Executor::MultiThread(pool) => pool.current_num_threads(),
        Executor::SingleThread => 1,
        Executor::RayonGlobal => rayon::current_num_threads(),
    }
}

#[test]
fn two_sessions_run_models_at_once_each_on_its_own_threads() {
    let (one, two) = (Session::new(1).unwrap(), Session::new(2).unwrap());
    let config = load_config("bert-mini").unwrap();
    let bytes = compile(&two, &config, BuildOptions::default(), &at_level(Level::O2))
        .unwrap()
        .to_bytes()
        .unwrap();
    // The pipeline ran tract (its check) and left the global executor alone.
    assert!(matches!(current_tract_executor(), Executor::SingleThread));
    let g = bertc::onnx::import_bytes(&bytes).unwrap();
    // Big enough that tract splits the products over a pool.
    let inputs = inputs_for(&g, 4, 64);
    let alone: Vec<NamedTensors> = [&one, &two]
        .map(|s| TractSession::from_bytes(s, &bytes).unwrap().run(&inputs).unwrap())
        .into();
    for _ in 0..4 {
        let run = |s: &Session| {
            let mut model = TractSession::from_bytes(s, &bytes).unwrap();
            let threads = s.with_tract(|| executor_threads(&current_tract_executor()));
            (threads, model.run(&inputs).unwrap())
        };
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| run(&one));
            let b = scope.spawn(|| run(&two));
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!((a.0, b.0), (1, 2), "each session computes on its own threads");
        for (name, x) in &a.1 {
            assert_eq!(x.to_f32(), alone[0][name].to_f32(), "{name}, 1 thread");
            assert_eq!(b.1[name].to_f32(), alone[1][name].to_f32(), "{name}, 2 threads");
        }
    }
    // The two-thread session's whole runs go on its own pool's threads.
    let thread = two.run_on_pool(|| std::thread::current().name().map(str::to_string));
    assert!(thread.is_some_and(|n| n.starts_with("tract-")));
    assert_eq!(
        one.run_on_pool(|| std::thread::current().id()),
        std::thread::current().id()
    );
    assert!(matches!(current_tract_executor(), Executor::SingleThread));
}
