//! Reading `pytorch_model.bin` (PyTorch's zip checkpoint) without running
//! its pickle, sharded index files, and finding weights in a model folder.
//!
//! The real checkpoint pair (seq-cls as safetensors, seq-cls-bin as
//! pytorch_model.bin as torch.save wrote it, 4 MB each) is read from
//! tests/fixtures/pipelines; every other file is built here, byte by byte,
//! as torch.save lays it out — valid ones, and hostile ones that must be
//! refused by name without a panic.

mod common;

use std::path::{Path, PathBuf};

use bertc::weights::{file_kind, find_weights, Checkpoint, FileKind, WeightsError};
use safetensors::Dtype;

// ---------------------------------------------------------------- builders

/// A pickle written opcode by opcode (protocol 2, as torch.save writes).
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn new() -> Self {
        Pickle(vec![0x80, 2])
    }
    fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b"c")
            .op(module.as_bytes())
            .op(b"\n")
            .op(name.as_bytes())
            .op(b"\n")
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.op(b"X").op(&(s.len() as u32).to_le_bytes()).op(s.as_bytes())
    }
    fn int(&mut self, v: u64) -> &mut Self {
        match v {
            0..=0xFF => self.op(&[b'K', v as u8]),
            0x100..=0xFFFF => self.op(b"M").op(&(v as u16).to_le_bytes()),
            _ => self.op(&[0x8a, 8]).op(&v.to_le_bytes()),
        }
    }
    fn ints(&mut self, vs: &[u64]) -> &mut Self {
        self.op(b"(");
        for &v in vs {
            self.int(v);
        }
        self.op(b"t")
    }
    /// `_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`
    /// with the storage as a persistent id, as torch.save writes it.
    fn tensor(&mut self, t: &TensorSpec) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b"((");
        self.str("storage")
            .global("torch", t.class)
            .str(t.key)
            .str("cpu")
            .int(t.numel);
        self.op(b"tQ")
            .int(t.offset)
            .ints(t.shape)
            .ints(t.stride)
            .op(&[0x89]);
        self.global("collections", "OrderedDict").op(b")R").op(b"tR")
    }
    fn state_dict(tensors: &[TensorSpec]) -> Vec<u8> {
        let mut p = Pickle::new();
        p.global("collections", "OrderedDict").op(b")R(");
        for t in tensors {
            p.str(t.name).tensor(t);
        }
        p.op(b"u.");
        p.0
    }
}

struct TensorSpec<'a> {
    name: &'a str,
    class: &'a str,
    key: &'a str,
    numel: u64,
    offset: u64,
    shape: &'a [u64],
    stride: &'a [u64],
}

fn spec<'a>(
    name: &'a str,
    class: &'a str,
    key: &'a str,
    numel: u64,
    shape: &'a [u64],
    stride: &'a [u64],
) -> TensorSpec<'a> {
    TensorSpec {
        name,
        class,
        key,
        numel,
        offset: 0,
        shape,
        stride,
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A zip archive of stored (uncompressed) entries, as torch.save writes.
fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let head = |sig: u32, out: &mut Vec<u8>| {
            out.extend(sig.to_le_bytes());
            if sig == 0x0201_4b50 {
                out.extend(20u16.to_le_bytes()); // version made by
            }
            out.extend(20u16.to_le_bytes()); // version needed
            out.extend(0u16.to_le_bytes()); // flags
            out.extend(0u16.to_le_bytes()); // method: stored
            out.extend(0u32.to_le_bytes()); // time, date
            out.extend(crc32(data).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes()); // extra
        };
        head(0x0403_4b50, &mut out);
        out.extend(name.as_bytes());
        out.extend(data);
        head(0x0201_4b50, &mut central);
        central.extend([0u8; 6]); // comment len, disk, internal attrs
        central.extend(0u32.to_le_bytes()); // external attrs
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// A torch.save-style checkpoint: `archive/data.pkl`, the storages as
/// `archive/data/<key>`, and the version and byteorder records.
fn torch_file(pickle: Vec<u8>, storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut entries = vec![
        ("archive/data.pkl".to_string(), pickle),
        ("archive/byteorder".to_string(), b"little".to_vec()),
    ];
    for (key, data) in storages {
        entries.push((format!("archive/data/{key}"), data.clone()));
    }
    entries.push(("archive/version".to_string(), b"3\n".to_vec()));
    zip(&entries)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn open_err(bytes: &[u8]) -> WeightsError {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "pytorch_model.bin", bytes);
    match Checkpoint::open(&path) {
        Ok(ck) => panic!("expected an error, read {:?}", ck.names()),
        Err(e) => e,
    }
}

/// Writes `bytes` to a new file and opens it with [`open_all`]. (Through
/// the new file's handle: reopening it with O_TRUNC, as fs::write does,
/// makes ext4 flush it on close, 20× slower.)
fn open_variant(dir: &Path, bytes: &[u8]) -> Result<usize, String> {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new_in(dir).unwrap();
    file.write_all(bytes).unwrap();
    open_all(file.path())
}

/// Opens `bytes` and reads every tensor; any outcome but a panic is fine.
fn open_all(path: &Path) -> Result<usize, String> {
    let ck = Checkpoint::open(path).map_err(|e| e.to_string())?;
    let mut read = 0;
    for name in ck.names() {
        if ck.to_f32(&name).is_ok() {
            read += 1;
        }
    }
    Ok(read)
}

// A valid file exercising every layout a state_dict uses: f32/f16/bf16
// storages, one storage shared by a tensor, its transpose, and a row at
// an offset, and an int64 buffer.
const MATRIX: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];

fn valid_file() -> Vec<u8> {
    let tensors = [
        spec("w", "FloatStorage", "0", 6, &[2, 3], &[3, 1]),
        spec("w_t", "FloatStorage", "0", 6, &[3, 2], &[1, 3]),
        TensorSpec {
            offset: 3,
            ..spec("row", "FloatStorage", "0", 6, &[3], &[1])
        },
        spec("h", "HalfStorage", "1", 2, &[2], &[1]),
        spec("b", "BFloat16Storage", "2", 2, &[1, 2], &[2, 1]),
        spec("ids", "LongStorage", "3", 2, &[1, 2], &[2, 1]),
    ];
    let half: Vec<u8> = [0.5f32, -2.0]
        .iter()
        .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
        .collect();
    let bf: Vec<u8> = [0.25f32, 3.0]
        .iter()
        .flat_map(|&x| half::bf16::from_f32(x).to_le_bytes())
        .collect();
    let ids: Vec<u8> = [0i64, 1].iter().flat_map(|x| x.to_le_bytes()).collect();
    torch_file(
        Pickle::state_dict(&tensors),
        &[("0", f32_bytes(&MATRIX)), ("1", half), ("2", bf), ("3", ids)],
    )
}

// ---------------------------------------------------------------- real files

fn pipelines() -> PathBuf {
    common::fixture("pipelines")
}

#[test]
fn pytorch_bin_holds_the_same_tensors_as_safetensors() {
    let dir = pipelines();
    let bin = Checkpoint::open(&dir.join("seq-cls-bin/pytorch_model.bin")).unwrap();
    let st = Checkpoint::open(&dir.join("seq-cls/model.safetensors")).unwrap();
    assert_eq!(bin.names(), st.names());
    assert_eq!(bin.names().len(), 41);
    for name in bin.names() {
        assert_eq!(bin.shape(&name), st.shape(&name), "{name}");
        let (a, b) = (bin.to_f32(&name).unwrap(), st.to_f32(&name).unwrap());
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(bits(&a) == bits(&b), "`{name}` differs between the two files");
    }
}

/// `bertc compile CONFIG --weights WEIGHTS -o OUT`: (output, stderr).
fn bertc_compile(config: &Path, weights: &Path, output: &Path) -> (std::process::Output, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertc"))
        .arg("compile")
        .arg(config)
        .arg("--weights")
        .arg(weights)
        .arg("-o")
        .arg(output)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

#[test]
fn pytorch_bin_compiles_to_the_same_onnx_bytes() {
    let dir = pipelines();
    let tmp = tempfile::tempdir().unwrap();
    let config = dir.join("seq-cls/config.json");
    let (st, bin) = (tmp.path().join("st.onnx"), tmp.path().join("bin.onnx"));
    let (out, err) = bertc_compile(&config, &dir.join("seq-cls/model.safetensors"), &st);
    assert!(out.status.success(), "{err}");
    let (out, err) = bertc_compile(&config, &dir.join("seq-cls-bin/pytorch_model.bin"), &bin);
    assert!(out.status.success(), "{err}");
    assert!(
        std::fs::read(st).unwrap() == std::fs::read(bin).unwrap(),
        "the ONNX files differ"
    );
}

#[test]
fn sniffs_kinds_by_bytes_not_names() {
    let dir = pipelines();
    let tmp = tempfile::tempdir().unwrap();
    // Misnamed on purpose: the extension says nothing.
    let st = write(
        tmp.path(),
        "x.bin",
        &std::fs::read(dir.join("seq-cls/model.safetensors")).unwrap(),
    );
    let bin = write(
        tmp.path(),
        "x.safetensors",
        &std::fs::read(dir.join("seq-cls-bin/pytorch_model.bin")).unwrap(),
    );
    assert_eq!(file_kind(&st).unwrap(), FileKind::Safetensors);
    assert_eq!(file_kind(&bin).unwrap(), FileKind::TorchZip);
    assert_eq!(
        file_kind(&dir.join("seq-cls/config.json")).unwrap(),
        FileKind::Json
    );
    assert_eq!(Checkpoint::open(&bin).unwrap().names().len(), 41);
    assert_eq!(Checkpoint::open(&bin).unwrap().kind(), FileKind::TorchZip);
    assert_eq!(Checkpoint::open(&st).unwrap().names().len(), 41);
}

// ---------------------------------------------------------------- layouts

#[test]
fn views_of_shared_storages_are_materialized() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "pytorch_model.bin", &valid_file());
    let ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.names(), ["b", "h", "ids", "row", "w", "w_t"]);
    assert_eq!(ck.to_f32("w").unwrap(), MATRIX);
    assert_eq!(ck.to_f32("w_t").unwrap(), [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    assert_eq!(ck.to_f32("row").unwrap(), [4.0, 5.0, 6.0]);
    assert_eq!(ck.to_f32("h").unwrap(), [0.5, -2.0]);
    assert_eq!(ck.to_f32("b").unwrap(), [0.25, 3.0]);
    assert_eq!(ck.shape("b"), Some(&[1usize, 2][..]));
    // An int64 buffer is listed but is not a weight.
    let err = ck.to_f32("ids").unwrap_err();
    assert!(err.contains("`ids`") && err.contains("torch.int64"), "{err}");
}

#[test]
fn protocol_4_framing_and_parameters_are_read() {
    // Parameters (`_rebuild_parameter`), a FRAME, MEMOIZE/BINGET and
    // STACK_GLOBAL, as a torch.save with pickle_protocol=4 writes them.
    let mut p = Pickle(vec![0x80, 4, 0x95]);
    p.op(&0u64.to_le_bytes());
    p.op(b"}")
        .op(&[0x94])
        .str("p")
        .op(&[0x8c, 12])
        .op(b"torch._utils")
        .op(&[0x8c, 18])
        .op(b"_rebuild_parameter")
        .op(&[0x93]);
    p.op(b"(");
    p.tensor(&spec("", "FloatStorage", "0", 6, &[6], &[1]));
    p.op(&[0x88])
        .global("collections", "OrderedDict")
        .op(b")RtR")
        .op(b"s.");
    let bytes = torch_file(p.0, &[("0", f32_bytes(&MATRIX))]);
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), "pytorch_model.bin", &bytes);
    let ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.to_f32("p").unwrap(), MATRIX);
}

#[test]
fn state_dict_metadata_is_ignored() {
    // model.state_dict() is an OrderedDict whose `_metadata` attribute
    // (module versions) is pickled after the items, with BUILD.
    let mut p = Pickle::new();
    p.global("collections", "OrderedDict").op(b"q\x00)R(").str("w");
    p.tensor(&spec("", "FloatStorage", "0", 6, &[2, 3], &[3, 1]))
        .op(b"u");
    p.op(b"}")
        .str("_metadata")
        .op(b"h\x00)R")
        .str("")
        .op(b"}")
        .str("version")
        .int(1);
    p.op(b"sssb.");
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        "pytorch_model.bin",
        &torch_file(p.0, &[("0", f32_bytes(&MATRIX))]),
    );
    let ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.names(), ["w"]);
    assert_eq!(ck.to_f32("w").unwrap(), MATRIX);
}

#[test]
fn tied_weights_share_one_memoized_storage() {
    // Tied parameters (MLM decoder = word embeddings) are pickled once:
    // the second tensor fetches the first one's storage from the memo.
    let mut p = Pickle::new();
    p.op(b"}(")
        .str("emb")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(b"q\x01((");
    p.str("storage")
        .global("torch", "FloatStorage")
        .str("0")
        .str("cpu")
        .int(6);
    p.op(b"tQq\x02").int(0).ints(&[3, 2]).ints(&[2, 1]).op(&[0x89]);
    p.global("collections", "OrderedDict").op(b")RtR");
    p.str("decoder")
        .op(b"h\x01(h\x02")
        .int(0)
        .ints(&[3, 2])
        .ints(&[2, 1])
        .op(&[0x89]);
    p.global("collections", "OrderedDict").op(b")RtRu.");
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        "pytorch_model.bin",
        &torch_file(p.0, &[("0", f32_bytes(&MATRIX))]),
    );
    let ck = Checkpoint::open(&path).unwrap();
    assert_eq!(ck.to_f32("emb").unwrap(), MATRIX);
    assert_eq!(ck.to_f32("decoder").unwrap(), MATRIX);
}

// ---------------------------------------------------------------- hostile files

fn refused_global(bytes: &[u8]) -> String {
    match open_err(bytes) {
        WeightsError::RefusedGlobal { global, .. } => global,
        other => panic!("expected a refused global, got: {other}"),
    }
}

#[test]
fn os_system_is_refused_by_name_and_not_run() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("pwned");
    let mut p = Pickle::new();
    p.global("os", "system")
        .str(&format!("touch {}", marker.display()))
        .op(&[0x85])
        .op(b"R.");
    let bytes = torch_file(p.0, &[]);
    let err = open_err(&bytes);
    let msg = err.to_string();
    assert!(msg.contains("refused global os.system"), "{msg}");
    assert!(msg.contains("nothing was executed"), "{msg}");
    assert!(!marker.exists());
}

#[test]
fn other_globals_are_refused_by_name() {
    let call = |module: &str, name: &str| {
        let mut p = Pickle::new();
        p.global(module, name).str("1+1").op(&[0x85]).op(b"R.");
        torch_file(p.0, &[])
    };
    assert_eq!(refused_global(&call("builtins", "eval")), "builtins.eval");
    assert_eq!(refused_global(&call("posix", "system")), "posix.system");
    assert_eq!(refused_global(&call("subprocess", "Popen")), "subprocess.Popen");
    // A class whose __reduce__ would run on load.
    assert_eq!(refused_global(&call("__main__", "Exploit")), "__main__.Exploit");
    // Real torch globals outside a state_dict's needs.
    assert_eq!(
        refused_global(&call("torch.serialization", "_load_from_bytes")),
        "torch.serialization._load_from_bytes"
    );
    assert_eq!(refused_global(&call("torch", "load")), "torch.load");

    // Hidden inside an otherwise valid state_dict, as a tensor's hooks.
    let mut p = Pickle::new();
    p.op(b"}(").str("w");
    p.global("torch._utils", "_rebuild_tensor_v2").op(b"((");
    p.str("storage")
        .global("torch", "FloatStorage")
        .str("0")
        .str("cpu")
        .int(6);
    p.op(b"tQ").int(0).ints(&[6]).ints(&[1]).op(&[0x89]);
    p.global("builtins", "exec")
        .str("import os")
        .op(&[0x85])
        .op(b"R")
        .op(b"tRu.");
    assert_eq!(
        refused_global(&torch_file(p.0, &[("0", f32_bytes(&MATRIX))])),
        "builtins.exec"
    );

    // protocol 4's STACK_GLOBAL takes the names from strings.
    let mut p = Pickle(vec![0x80, 4]);
    p.str("os")
        .str("system")
        .op(&[0x93])
        .str("id")
        .op(&[0x85])
        .op(b"R.");
    assert_eq!(refused_global(&torch_file(p.0, &[])), "os.system");
}

#[test]
fn opcodes_that_build_objects_are_refused() {
    // INST, OBJ, NEWOBJ and the extension registry (EXT1) can create
    // arbitrary objects; a state_dict never uses them.
    for op in [&b"i"[..], b"o", &[0x81], &[0x82, 1]] {
        let mut p = Pickle::new();
        p.op(b"(").op(op);
        let msg = open_err(&torch_file(p.0, &[])).to_string();
        assert!(msg.contains("is not one a torch state_dict uses"), "{msg}");
    }
}

fn torch_err(bytes: &[u8]) -> String {
    match open_err(bytes) {
        WeightsError::Torch { reason, .. } => reason,
        other => panic!("expected a malformed-checkpoint error, got: {other}"),
    }
}

#[test]
fn views_outside_their_storage_are_refused_naming_the_tensor() {
    let one =
        |t: TensorSpec, storage: Vec<u8>| torch_err(&torch_file(Pickle::state_dict(&[t]), &[("0", storage)]));
    let six = || f32_bytes(&MATRIX);

    // The entry is shorter than the storage the pickle declares.
    let msg = one(
        spec("short", "FloatStorage", "0", 6, &[6], &[1]),
        six()[..20].to_vec(),
    );
    assert!(msg.contains("`short`") && msg.contains("holds 20 bytes"), "{msg}");
    // Offset past the end.
    let msg = one(
        TensorSpec {
            offset: 4,
            ..spec("off", "FloatStorage", "0", 6, &[3], &[1])
        },
        six(),
    );
    assert!(msg.contains("`off` reaches past the end"), "{msg}");
    // Shape past the end.
    let msg = one(spec("big", "FloatStorage", "0", 6, &[3, 3], &[3, 1]), six());
    assert!(msg.contains("`big`"), "{msg}");
    // Stride past the end.
    let msg = one(spec("strided", "FloatStorage", "0", 6, &[2, 3], &[4, 1]), six());
    assert!(msg.contains("`strided` reaches past the end"), "{msg}");
    // Absurd sizes: overflowing shapes, a storage of 2^62 elements, a
    // broadcast view of a billion billion elements. None is allocated.
    let huge = 1u64 << 40;
    let msg = one(
        spec("overflow", "FloatStorage", "0", 6, &[huge, huge], &[0, 0]),
        six(),
    );
    assert!(msg.contains("`overflow`"), "{msg}");
    let msg = one(spec("claims", "FloatStorage", "0", 1 << 62, &[6], &[1]), six());
    assert!(
        msg.contains("`claims`") && msg.contains("4611686018427387904 elements"),
        "{msg}"
    );
    let msg = one(
        spec("broadcast", "FloatStorage", "0", 6, &[1 << 30, 1 << 30], &[0, 0]),
        six(),
    );
    assert!(
        msg.contains("`broadcast`") && msg.contains("more than its storage"),
        "{msg}"
    );
    // A storage the archive lacks.
    let msg = one(spec("lost", "FloatStorage", "7", 6, &[6], &[1]), six());
    assert!(msg.contains("`lost`") && msg.contains("archive/data/7"), "{msg}");
    // An unknown storage type is a global like any other.
    let bytes = torch_file(
        Pickle::state_dict(&[spec("x", "UntypedStorage", "0", 6, &[6], &[1])]),
        &[("0", six())],
    );
    assert_eq!(refused_global(&bytes), "torch.UntypedStorage");
}

#[test]
fn malformed_pickles_and_archives_are_errors() {
    // Not a dict of tensors.
    let mut p = Pickle::new();
    p.op(b"}").str("epoch").int(3).op(b"s.");
    let msg = torch_err(&torch_file(p.0, &[]));
    assert!(msg.contains("entry `epoch` is an int, not a tensor"), "{msg}");
    // A string claiming 4 GiB.
    let mut p = Pickle::new();
    p.op(b"X").op(&u32::MAX.to_le_bytes()).op(b"abc");
    assert!(torch_err(&torch_file(p.0, &[])).contains("truncated"));
    // Deeply nested tuples, and a stack of a million marks: bounded, no
    // stack overflow.
    let mut p = Pickle::new();
    p.op(b")");
    for _ in 0..200_000 {
        p.op(&[0x85]);
    }
    p.op(b".");
    assert!(torch_err(&torch_file(p.0, &[])).contains("not a state_dict"));
    let mut p = Pickle::new();
    p.op(&vec![b'('; 1_100_000]);
    assert!(torch_err(&torch_file(p.0, &[])).contains("too deep"));
    // Rebuilding one tensor over and over (each copy allocates) stops at
    // the budget instead of exhausting memory.
    let mut p = Pickle::new();
    p.global("torch._utils", "_rebuild_parameter").op(b"q\x01");
    p.tensor(&spec("", "FloatStorage", "0", 6, &[6], &[1]))
        .op(b"q\x02");
    for _ in 0..2_100_000 {
        p.op(b"h\x01h\x02").op(&[0x85]).op(b"R0");
    }
    let msg = torch_err(&torch_file(p.0, &[("0", f32_bytes(&MATRIX))]));
    assert!(msg.contains("builds more data than a state_dict holds"), "{msg}");
    // No data.pkl; a zip that claims more entries than it holds; a
    // compressed entry.
    let msg = torch_err(&zip(&[("archive/other".into(), vec![1, 2, 3])]));
    assert!(msg.contains("no data.pkl"), "{msg}");
    let mut bytes = zip(&[("archive/data.pkl".into(), Pickle::state_dict(&[]))]);
    let n = bytes.len();
    bytes[n - 12..n - 10].copy_from_slice(&0xFFFEu16.to_le_bytes());
    assert!(torch_err(&bytes).contains("65534 entries"));
    let mut bytes = zip(&[("archive/data.pkl".into(), Pickle::state_dict(&[]))]);
    bytes[8] = 8; // local header: deflate
    let cd = u32::from_le_bytes(bytes[n - 6..n - 2].try_into().unwrap()) as usize;
    bytes[cd + 10] = 8; // central record: deflate
    assert!(torch_err(&bytes).contains("compressed (method 8)"));
}

/// Two archive folders whose names have one length each holding a
/// data.pkl: which was read depended on hash-map order, so compiles of one
/// file gave zeroed or real weights (issue 25, N3). Refused, naming both.
#[test]
fn two_archive_folders_are_refused_by_name_never_picked() {
    let w = [spec("w", "FloatStorage", "0", 6, &[6], &[1])];
    let real = Pickle::state_dict(&w);
    let mut entries = vec![];
    for (folder, values) in [("zeroes", [0.0f32; 6]), ("weight", MATRIX)] {
        entries.push((format!("{folder}/data.pkl"), real.clone()));
        entries.push((format!("{folder}/data/0"), f32_bytes(&values)));
    }
    for order in [entries.clone(), entries.into_iter().rev().collect()] {
        let msg = torch_err(&zip(&order));
        assert!(
            msg.contains("2 state_dict pickles (weight/data.pkl, zeroes/data.pkl)")
                && msg.contains("ambiguous"),
            "{msg}"
        );
    }
}

/// A dict of millions of pairs reusing one memoized name and tensor fits
/// the pickle budget as ids; copying each pair out took gigabytes (issue
/// 25, N4). The copies are charged to the budget too, and a name set
/// twice is refused.
#[test]
fn state_dict_copies_are_bounded_and_a_repeated_name_is_refused() {
    let tensor = spec("", "FloatStorage", "0", 6, &[6], &[1]);
    let repeated = |pairs: usize| {
        let mut p = Pickle::new();
        p.global("collections", "OrderedDict").op(b")R");
        p.str("encoder.layer.0.attention.self.query.weight").op(b"q\x01");
        p.tensor(&tensor).op(b"q\x02").op(b"00");
        // In SETITEMS batches of 1000, as pickle writes a dict.
        for batch in 0..pairs.div_ceil(1000) {
            p.op(b"(");
            for _ in 0..(pairs - batch * 1000).min(1000) {
                p.op(b"h\x01h\x02");
            }
            p.op(b"u");
        }
        p.op(b".");
        torch_file(p.0, &[("0", f32_bytes(&MATRIX))])
    };
    let msg = torch_err(&repeated(3_000_000));
    assert!(msg.contains("builds more data than a state_dict holds"), "{msg}");
    let msg = torch_err(&repeated(2));
    assert!(
        msg.contains("sets `encoder.layer.0.attention.self.query.weight` more than once"),
        "{msg}"
    );
}

#[test]
fn wrong_kinds_say_what_was_found() {
    let tmp = tempfile::tempdir().unwrap();
    let legacy = write(
        tmp.path(),
        "old.bin",
        &[
            0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
        ],
    );
    let msg = Checkpoint::open(&legacy).unwrap_err().to_string();
    assert!(
        msg.contains("legacy") && msg.contains("re-save with a recent PyTorch"),
        "{msg}"
    );

    let onnx = write(
        tmp.path(),
        "m.bin",
        &[0x08, 0x08, 0x12, 0x05, b'b', b'e', b'r', b't', b'c'],
    );
    let msg = Checkpoint::open(&onnx).unwrap_err().to_string();
    assert!(
        msg.contains("expected a checkpoint") && msg.contains("found an ONNX model"),
        "{msg}"
    );

    let json = write(tmp.path(), "config.safetensors", b"{\"model_type\": \"bert\"}");
    let msg = Checkpoint::open(&json).unwrap_err().to_string();
    assert!(msg.contains("found a JSON file"), "{msg}");

    let msg = Checkpoint::open(tmp.path()).unwrap_err().to_string();
    assert!(msg.contains("found a directory"), "{msg}");
    let empty = write(tmp.path(), "empty", b"");
    assert!(Checkpoint::open(&empty)
        .unwrap_err()
        .to_string()
        .contains("found an empty file"));
}

#[test]
fn truncations_and_bit_flips_never_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let good = valid_file();
    let path = tmp.path().join("pytorch_model.bin");
    std::fs::write(&path, &good).unwrap();
    assert_eq!(open_all(&path), Ok(5));

    let mut errors = 0;
    for len in 0..good.len() {
        errors += open_variant(tmp.path(), &good[..len]).is_err() as usize;
    }
    // Only the cuts inside the zip's trailing comment-free tail could
    // succeed; none does, since the directory is at the end.
    assert_eq!(errors, good.len());

    // Deterministic bit flips (xorshift), one to three per file.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..=(next() % 3) {
            let at = (next() % bytes.len() as u64) as usize;
            bytes[at] ^= 1 << (next() % 8);
        }
        let _ = open_variant(tmp.path(), &bytes);
    }
}

#[test]
fn bit_flips_in_the_real_pickle_never_panic() {
    let real = std::fs::read(pipelines().join("seq-cls-bin/pytorch_model.bin")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // data.pkl is the first entry (bytes ~60..4550); the central
    // directory is the last ~4 KB.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let tail = real.len() - 4096;
    for i in 0..150 {
        let mut bytes = real.clone();
        let at = match i % 2 {
            0 => 30 + (next() % 4600) as usize,
            _ => tail + (next() % 4096) as usize,
        };
        bytes[at] ^= 1 << (next() % 8);
        let _ = open_variant(tmp.path(), &bytes);
    }
}

// ---------------------------------------------------------------- indexes

fn safetensors_file(name: &str, values: &[f32]) -> Vec<u8> {
    let bytes = f32_bytes(values);
    let view = safetensors::tensor::TensorView::new(Dtype::F32, vec![values.len()], &bytes).unwrap();
    safetensors::serialize([(name.to_string(), view)], None).unwrap()
}

#[test]
fn sharded_indexes_of_either_format_are_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // safetensors shards
    write(
        d,
        "model-00001-of-00002.safetensors",
        &safetensors_file("a", &[1.0, 2.0]),
    );
    write(
        d,
        "model-00002-of-00002.safetensors",
        &safetensors_file("b", &[3.0]),
    );
    let index = write(
        d,
        "model.safetensors.index.json",
        br#"{"metadata": {"total_size": 12}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#,
    );
    assert_eq!(file_kind(&index).unwrap(), FileKind::WeightIndex);
    let ck = Checkpoint::open(&index).unwrap();
    assert_eq!(ck.kind(), FileKind::WeightIndex);
    assert_eq!(ck.names(), ["a", "b"]);
    assert_eq!(ck.to_f32("a").unwrap(), [1.0, 2.0]);
    assert_eq!(ck.to_f32("b").unwrap(), [3.0]);

    // pytorch_model.bin shards
    let shard = |name: &str, values: &[f32]| {
        let n = values.len() as u64;
        torch_file(
            Pickle::state_dict(&[spec(name, "FloatStorage", "0", n, &[n], &[1])]),
            &[("0", f32_bytes(values))],
        )
    };
    write(d, "pytorch_model-00001-of-00002.bin", &shard("x", &[5.0, 6.0]));
    write(d, "pytorch_model-00002-of-00002.bin", &shard("y", &[7.0]));
    let index = write(
        d,
        "pytorch_model.bin.index.json",
        br#"{"weight_map": {"x": "pytorch_model-00001-of-00002.bin", "y": "pytorch_model-00002-of-00002.bin"}}"#,
    );
    let ck = Checkpoint::open(&index).unwrap();
    assert_eq!(ck.names(), ["x", "y"]);
    assert_eq!(ck.to_f32("y").unwrap(), [7.0]);

    // Errors name the index and the problem.
    let bad = |json: &str| {
        let path = write(d, "bad.index.json", json.as_bytes());
        Checkpoint::open(&path).unwrap_err().to_string()
    };
    let msg = bad(r#"{"weight_map": {"x": "../pytorch_model-00001-of-00002.bin"}}"#);
    assert!(msg.contains("not a file in the index's folder"), "{msg}");
    let msg = bad(r#"{"weight_map": {"z": "pytorch_model-00001-of-00002.bin"}}"#);
    assert!(msg.contains("`z` is mapped to shard"), "{msg}");
    let msg = bad(
        r#"{"weight_map": {"x": "pytorch_model-00001-of-00002.bin", "a": "model.safetensors.index.json"}}"#,
    );
    assert!(msg.contains("is itself an index"), "{msg}");
    let msg = bad(r#"{"weight_map": {"x": "missing.bin"}}"#);
    assert!(msg.contains("missing.bin"), "{msg}");
}

#[test]
fn find_weights_prefers_safetensors_then_single_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    assert_eq!(find_weights(d), None);
    let order = [
        "pytorch_model.bin.index.json",
        "pytorch_model.bin",
        "model.safetensors.index.json",
        "model.safetensors",
    ];
    for name in order {
        write(d, name, b"x");
        assert_eq!(find_weights(d), Some(d.join(name)), "after adding {name}");
    }
    // A directory of that name is not a checkpoint.
    let sub = tempfile::tempdir().unwrap();
    std::fs::create_dir(sub.path().join("model.safetensors")).unwrap();
    assert_eq!(find_weights(sub.path()), None);

    let dir = pipelines();
    assert_eq!(
        find_weights(&dir.join("seq-cls-bin")),
        Some(dir.join("seq-cls-bin/pytorch_model.bin"))
    );
    assert_eq!(
        find_weights(&dir.join("seq-cls")),
        Some(dir.join("seq-cls/model.safetensors"))
    );
}

// ---------------------------------------------------------------- the CLI

#[test]
fn cli_refuses_a_hostile_bin_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("pwned");
    let mut p = Pickle::new();
    p.global("os", "system")
        .str(&format!("touch {}", marker.display()))
        .op(&[0x85])
        .op(b"R.");
    let weights = write(tmp.path(), "pytorch_model.bin", &torch_file(p.0, &[]));
    let output = tmp.path().join("m.onnx");
    let (out, err) = bertc_compile(&pipelines().join("seq-cls/config.json"), &weights, &output);
    assert!(!out.status.success());
    assert!(err.starts_with("error: ") && !err.contains("panicked"), "{err}");
    assert!(
        err.contains("refused global os.system") && err.contains("nothing was executed"),
        "{err}"
    );
    assert!(!output.exists() && !marker.exists());
}
