//! The graph being compiled together with what has been made of it: the
//! bytes a stage serialized (and tract loaded) and the write of those
//! bytes to the output that may already be under way.
//!
//! Why one type: serializing a large model and parsing it back costs about
//! a second each for BERT-base, so the pipeline writes the very bytes the
//! check or the accuracy gate loaded. Those bytes are only right while the
//! graph is the one they came from. Here the graph is private: it is read
//! through [`Artifact::graph`] and changed only through [`Artifact::change`],
//! which drops the bytes and the early write (removing its temporary
//! file), so what is written is always the serialization of the graph
//! held — never a stale one.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::atomic_write::{write_atomic, EarlyWrite};
use crate::ir::Graph;
use crate::onnx::{
    export_bytes, export_into, single_file, write_model, write_model_files, written_with_external_data,
    ExportOptions, OnnxError, Sink, WrittenModel,
};

pub struct Artifact {
    graph: Graph,
    export: ExportOptions,
    /// Where the model will be written, when the caller said: the final
    /// graph's bytes then go straight into a temporary file beside it.
    output: Option<PathBuf>,
    /// `graph` serialized with `export`, when a stage made exactly the
    /// bytes that are written.
    bytes: Option<Bytes>,
    /// Those bytes, being written to `output` already.
    early: Option<EarlyWrite>,
}

impl Artifact {
    pub fn new(graph: Graph, export: ExportOptions, output: Option<PathBuf>) -> Artifact {
        Artifact {
            graph,
            export,
            output,
            bytes: None,
            early: None,
        }
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The options the model is written with.
    pub fn export(&self) -> ExportOptions {
        self.export
    }

    /// Changes the graph. What was serialized of the graph before is
    /// dropped first (an early write's temporary file is removed).
    pub fn change<R>(&mut self, f: impl FnOnce(&mut Graph) -> R) -> R {
        self.bytes = None;
        self.early = None;
        f(&mut self.graph)
    }

    pub fn into_graph(self) -> Graph {
        self.graph
    }

    /// The form tract loads: every initializer inline (tract takes a
    /// model's graph and weights from one buffer). It is the written form
    /// unless the model is written with external data.
    pub fn inline(&self) -> ExportOptions {
        ExportOptions {
            external_data: false,
            ..self.export
        }
    }

    /// Whether the model is written with external data: asked for, or
    /// beyond protobuf's limit once encoded.
    pub fn written_with_external_data(&self) -> Result<bool, OnnxError> {
        written_with_external_data(&self.graph, self.export)
    }

    /// Serializes the graph in the form tract loads ([`Artifact::inline`]).
    /// When `written` — no later stage changes the graph — those bytes are
    /// kept as the written ones if the model is written as them (one file,
    /// no external data), and are serialized straight into the output's
    /// temporary file when the output is known.
    pub fn serialize(&mut self, written: bool) -> Result<Bytes, OnnxError> {
        let sink = match (&self.output, written && !self.export.external_data) {
            (Some(path), true) => Sink::File(path.as_path()),
            _ => Sink::Memory,
        };
        let (bytes, early) = export_into(&self.graph, self.inline(), sink)?;
        if written && single_file(bytes.len(), self.export) {
            self.bytes = Some(bytes.clone());
            self.early = early;
        }
        Ok(bytes)
    }

    /// The ONNX bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, OnnxError> {
        match &self.bytes {
            Some(b) => Ok(b.to_vec()),
            None => export_bytes(&self.graph, self.export),
        }
    }

    /// Serializes into `path` atomically; returns the file size.
    pub fn write(&self, path: &Path) -> Result<usize, OnnxError> {
        match &self.bytes {
            Some(b) => {
                write_atomic(path, b).map_err(|error| OnnxError::Io {
                    path: path.display().to_string(),
                    error,
                })?;
                Ok(b.len())
            }
            None => write_model(&self.graph, self.export, path),
        }
    }

    /// Serializes into `path` atomically (with its external data file when
    /// there is one); says which files were written. The write a stage
    /// started to this path is finished instead.
    pub fn write_files(&mut self, path: &Path) -> Result<WrittenModel, OnnxError> {
        if let Some(early) = self.early.take_if(|e| e.path() == path) {
            let model_bytes = early.finish().map_err(|error| OnnxError::Io {
                path: path.display().to_string(),
                error,
            })?;
            return Ok(WrittenModel {
                model_bytes,
                external_data: None,
            });
        }
        match &self.bytes {
            Some(_) => Ok(WrittenModel {
                model_bytes: self.write(path)?,
                external_data: None,
            }),
            None => write_model_files(&self.graph, self.export, path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{build, load_config, BuildOptions};

    fn tiny() -> Graph {
        build(&load_config("bert-tiny").unwrap(), &BuildOptions::default())
            .unwrap()
            .graph
    }

    /// Bytes serialized for the write, and the early write of them, are
    /// dropped by a change: what is written is the changed graph, and the
    /// temporary file the early write held is gone.
    #[test]
    fn a_change_drops_the_bytes_and_the_early_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        let mut artifact = Artifact::new(tiny(), ExportOptions::default(), Some(path.clone()));
        let before = artifact.serialize(true).unwrap();
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no early write"
        );
        artifact.change(|g| g.metadata.insert("changed".into(), "yes".into()));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the early write stayed"
        );
        let fresh = export_bytes(artifact.graph(), artifact.export()).unwrap();
        assert!(fresh != before.to_vec());
        assert!(artifact.to_bytes().unwrap() == fresh);
        let written = artifact.write_files(&path).unwrap();
        assert_eq!(written.model_bytes, fresh.len());
        assert!(std::fs::read(&path).unwrap() == fresh);
    }

    /// Bytes serialized for a graph a later stage changes are not kept:
    /// the write serializes the graph it holds.
    #[test]
    fn bytes_of_a_graph_not_written_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.onnx");
        let mut artifact = Artifact::new(tiny(), ExportOptions::default(), Some(path.clone()));
        artifact.serialize(false).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(artifact.bytes.is_none() && artifact.early.is_none());
    }
}
