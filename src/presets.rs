//! Model configs that ship inside the binary (the files in `models/`), so
//! `bertc compile bert-base-uncased` works with nothing else on disk.

/// (name, config.json text) for every preset, sorted by name.
pub const PRESETS: &[(&str, &str)] = &[
    ("albert-base-v2", include_str!("../models/albert-base-v2.json")),
    ("albert-large-v2", include_str!("../models/albert-large-v2.json")),
    (
        "all-MiniLM-L6-v2",
        include_str!("../models/all-MiniLM-L6-v2.json"),
    ),
    (
        "all-mpnet-base-v2",
        include_str!("../models/all-mpnet-base-v2.json"),
    ),
    ("bert-base-cased", include_str!("../models/bert-base-cased.json")),
    (
        "bert-base-chinese",
        include_str!("../models/bert-base-chinese.json"),
    ),
    (
        "bert-base-multilingual-cased",
        include_str!("../models/bert-base-multilingual-cased.json"),
    ),
    (
        "bert-base-uncased",
        include_str!("../models/bert-base-uncased.json"),
    ),
    (
        "bert-large-cased",
        include_str!("../models/bert-large-cased.json"),
    ),
    (
        "bert-large-uncased",
        include_str!("../models/bert-large-uncased.json"),
    ),
    ("bert-medium", include_str!("../models/bert-medium.json")),
    ("bert-mini", include_str!("../models/bert-mini.json")),
    ("bert-small", include_str!("../models/bert-small.json")),
    ("bert-tiny", include_str!("../models/bert-tiny.json")),
    ("deberta-v3-base", include_str!("../models/deberta-v3-base.json")),
    (
        "deberta-v3-large",
        include_str!("../models/deberta-v3-large.json"),
    ),
    (
        "deberta-v3-small",
        include_str!("../models/deberta-v3-small.json"),
    ),
    (
        "deberta-v3-xsmall",
        include_str!("../models/deberta-v3-xsmall.json"),
    ),
    (
        "distilbert-base-multilingual-cased",
        include_str!("../models/distilbert-base-multilingual-cased.json"),
    ),
    (
        "distilbert-base-uncased",
        include_str!("../models/distilbert-base-uncased.json"),
    ),
    (
        "electra-base-discriminator",
        include_str!("../models/electra-base-discriminator.json"),
    ),
    (
        "electra-small-discriminator",
        include_str!("../models/electra-small-discriminator.json"),
    ),
    ("eurobert-210m", include_str!("../models/eurobert-210m.json")),
    (
        "gte-base-en-v1.5",
        include_str!("../models/gte-base-en-v1.5.json"),
    ),
    (
        "jina-embeddings-v3",
        include_str!("../models/jina-embeddings-v3.json"),
    ),
    (
        "mdeberta-v3-base",
        include_str!("../models/mdeberta-v3-base.json"),
    ),
    ("modernbert-base", include_str!("../models/modernbert-base.json")),
    (
        "modernbert-large",
        include_str!("../models/modernbert-large.json"),
    ),
    (
        "nomic-embed-text-v1.5",
        include_str!("../models/nomic-embed-text-v1.5.json"),
    ),
    ("roberta-base", include_str!("../models/roberta-base.json")),
    ("roberta-large", include_str!("../models/roberta-large.json")),
    (
        "xlm-roberta-base",
        include_str!("../models/xlm-roberta-base.json"),
    ),
    (
        "xlm-roberta-large",
        include_str!("../models/xlm-roberta-large.json"),
    ),
];

/// The config text of a preset, by name.
pub fn preset(name: &str) -> Option<&'static str> {
    PRESETS.iter().find(|(n, _)| *n == name).map(|(_, text)| *text)
}
