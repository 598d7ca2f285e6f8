//! Models run at once on one session's pool, as the check and the
//! accuracy gate run them (`check::alongside`): every run must finish with
//! the numbers it gets alone. Runs go on the pool's own threads
//! (`Session::run_on_pool`); a second whole run stolen by a worker
//! waiting inside the first's matrix product would nest inside it, and
//! tract keeps each thread's product scratch borrowed across a product —
//! that nesting aborted the process (about one int8 BERT-base compile in
//! two) until only one run at a time may use the pool.

use bertc::passes::Level;
use bertc::pipeline::{at_level, compile, load_config, BuildOptions};
use bertc::runtime::{inputs_for, NamedTensors, PlanMode, TractSession};
use bertc::Session;

fn model(session: &Session, level: Level, int8: bool) -> Vec<u8> {
    let config = load_config("bert-small").unwrap();
    let mut opts = at_level(level);
    opts.check = false;
    if int8 {
        opts.precision = bertc::quantize::Precision::new(bertc::quantize::Form::Int8Dynamic);
    }
    compile(session, &config, BuildOptions::default(), &opts)
        .unwrap()
        .to_bytes()
        .unwrap()
}

fn same(a: &NamedTensors, b: &NamedTensors) {
    for (name, x) in a {
        assert_eq!(x.to_f32(), b[name].to_f32(), "{name}");
    }
}

#[test]
fn models_run_at_once_on_the_pool_agree_with_their_runs_alone() {
    let session = Session::new(2).unwrap();
    let f32_model = model(&session, Level::O2, false);
    let int8_model = model(&session, Level::O2, true);
    let g = bertc::onnx::import_bytes(&f32_model).unwrap();
    // Big enough that tract splits every product across the pool.
    let inputs = inputs_for(&g, 4, 64);
    // The check's and the gate's three kinds of run: optimized f32,
    // optimized int8, decluttered f32.
    let mut sessions = [
        TractSession::from_bytes(&session, &f32_model).unwrap(),
        TractSession::from_bytes(&session, &int8_model).unwrap(),
        TractSession::from_bytes(&session, &f32_model)
            .unwrap()
            .with_plan_mode(PlanMode::Decluttered),
    ];
    let alone: Vec<NamedTensors> = sessions.iter_mut().map(|s| s.run(&inputs).unwrap()).collect();
    for _ in 0..12 {
        // More runs than the pool has threads: some wait in its queue,
        // where a worker inside a product could steal them.
        let runs: Vec<NamedTensors> = std::thread::scope(|scope| {
            let handles: Vec<_> = sessions
                .iter_mut()
                .map(|s| scope.spawn(|| s.run(&inputs).unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (run, alone) in runs.iter().zip(&alone) {
            same(run, alone);
        }
    }
}
