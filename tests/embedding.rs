//! The library inside another program: library calls leave the program's
//! process-wide state alone. A library call leaves tract's global executor
//! as it was; two sessions with different thread counts run models at
//! once, each on its own threads.

use bertc::check::inputs_for;
use bertc::compile::{load_config, CompileOptions};
use bertc::passes::Level;
use bertc::pipeline::{at_level, compile};
use bertc::runtime::{NamedTensors, TractSession};
use bertc::Session;
use tract_linalg::multithread::{current_tract_executor, Executor};

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
    let bytes = compile(&two, &config, CompileOptions::default(), &at_level(Level::O2))
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
