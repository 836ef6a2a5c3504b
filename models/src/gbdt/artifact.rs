//! The model file: a versioned, self-describing binary format with the feature schema hash and
//! a BLAKE3 checksum of everything before it.
//!
//! ```text
//! "OMENGBDT" | format version u32 | body length u64 | body | BLAKE3(all before) 32 bytes
//! body: metadata JSON (length-prefixed: objective, feature names, schema hash, parameters,
//!       init score as bits) | trees, little-endian arrays
//! ```
//! Loading checks the magic, the version, the length, the checksum and then the schema hash the
//! reader expects, in that order; nothing is parsed before the checksum has passed.

use super::params::{GbdtParams, Objective};
use crate::calibrate::{Calibration, Isotonic, Platt};
use super::tree::Tree;
use super::Gbdt;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"OMENGBDT";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    objective: Objective,
    init_score_bits: u64,
    feature_names: Vec<String>,
    schema_hash: Option<String>,
    params: GbdtParams,
    trees: usize,
    /// `isotonic` (upper, value) or `platt` ([a, b]), floats as their bits.
    #[serde(default)]
    calibration: Option<(String, Vec<u64>, Vec<u64>)>,
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn floats(v: &[u64]) -> Vec<f64> {
    v.iter().map(|&b| f64::from_bits(b)).collect()
}

fn corrupt(m: impl Into<String>) -> Error {
    Error::Artifact { message: m.into() }
}

struct W(Vec<u8>);
impl W {
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64s(&mut self, v: &[f64]) {
        for x in v {
            self.u64(x.to_bits());
        }
    }
}

struct R<'a>(&'a [u8]);
impl R<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(corrupt("the model body ends early"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn f64s(&mut self, n: usize) -> Result<Vec<f64>> {
        (0..n).map(|_| self.u64().map(f64::from_bits)).collect()
    }
}

pub(crate) fn to_bytes(m: &Gbdt) -> Vec<u8> {
    let meta = Meta {
        objective: m.objective,
        init_score_bits: m.init_score.to_bits(),
        feature_names: m.feature_names.clone(),
        schema_hash: m.schema_hash.clone(),
        params: m.params.clone(),
        trees: m.trees.len(),
        calibration: m.calibration.as_ref().map(|c| match c {
            Calibration::Isotonic(i) => ("isotonic".to_owned(), bits(&i.upper), bits(&i.value)),
            Calibration::Platt(p) => ("platt".to_owned(), bits(&[p.a, p.b]), Vec::new()),
        }),
    };
    let json = serde_json::to_vec(&meta).expect("metadata serializes");
    let mut body = W(Vec::new());
    body.u64(json.len() as u64);
    body.0.extend_from_slice(&json);
    for t in &m.trees {
        let (internal, leaves) = (t.split_feature.len(), t.leaf_value.len());
        body.u32(internal as u32);
        body.u32(leaves as u32);
        for n in 0..internal {
            body.u32(t.split_feature[n]);
            body.0.push(t.split_bin[n]);
            body.0.push(u8::from(t.default_left[n]));
            body.u32(t.left[n] as u32);
            body.u32(t.right[n] as u32);
        }
        body.f64s(&t.threshold);
        body.f64s(&t.gain);
        body.f64s(&t.internal_count);
        body.f64s(&t.leaf_value);
        body.f64s(&t.leaf_count);
    }
    let mut out = W(Vec::with_capacity(body.0.len() + 64));
    out.0.extend_from_slice(MAGIC);
    out.u32(FORMAT_VERSION);
    out.u64(body.0.len() as u64);
    out.0.extend_from_slice(&body.0);
    let sum = blake3::hash(&out.0);
    out.0.extend_from_slice(sum.as_bytes());
    out.0
}

pub(crate) fn from_bytes(bytes: &[u8], expected_schema: Option<&str>) -> Result<Gbdt> {
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(corrupt("not an omen GBDT model (bad magic)"));
    }
    if bytes.len() < 20 + 32 {
        return Err(corrupt(format!("truncated: {} bytes", bytes.len())));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(corrupt(format!("format version {version}; this build reads version {FORMAT_VERSION}")));
    }
    let body_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
    let expected_len = 20usize.checked_add(body_len).and_then(|n| n.checked_add(32));
    if expected_len != Some(bytes.len()) {
        return Err(corrupt(format!("truncated or padded: {} bytes, the header says {}", bytes.len(), expected_len.unwrap_or(usize::MAX))));
    }
    let (content, sum) = bytes.split_at(20 + body_len);
    if blake3::hash(content).as_bytes() != sum {
        return Err(corrupt("checksum mismatch: the model file is corrupt"));
    }
    let mut r = R(&content[20..]);
    let json_len = r.u64()? as usize;
    let meta: Meta = serde_json::from_slice(r.take(json_len)?).map_err(|e| corrupt(format!("metadata: {e}")))?;
    if let Some(want) = expected_schema
        && meta.schema_hash.as_deref() != Some(want)
    {
        return Err(Error::SchemaMismatch {
            expected: want.to_owned(),
            found: meta.schema_hash.unwrap_or_else(|| "none".into()),
        });
    }
    let d = meta.feature_names.len();
    let mut trees = Vec::with_capacity(meta.trees);
    for k in 0..meta.trees {
        let internal = r.u32()? as usize;
        let leaves = r.u32()? as usize;
        if leaves != internal + 1 {
            return Err(corrupt(format!("tree {k}: {internal} splits and {leaves} leaves")));
        }
        let mut t = Tree::default();
        for _ in 0..internal {
            let f = r.u32()?;
            if f as usize >= d {
                return Err(corrupt(format!("tree {k}: feature {f} of {d}")));
            }
            t.split_feature.push(f);
            let b = r.take(2)?;
            t.split_bin.push(b[0]);
            t.default_left.push(b[1] != 0);
            for side in [&mut t.left, &mut t.right] {
                let c = r.u32()? as i32;
                let ok = if c >= 0 { (c as usize) < internal && c > 0 } else { ((!c) as usize) < leaves };
                if !ok {
                    return Err(corrupt(format!("tree {k}: child {c} out of range")));
                }
                side.push(c);
            }
        }
        t.threshold = r.f64s(internal)?;
        t.gain = r.f64s(internal)?;
        t.internal_count = r.f64s(internal)?;
        t.leaf_value = r.f64s(leaves)?;
        t.leaf_count = r.f64s(leaves)?;
        trees.push(t);
    }
    let mut model = Gbdt::new(meta.objective, f64::from_bits(meta.init_score_bits), trees, meta.feature_names, meta.params);
    model.schema_hash = meta.schema_hash;
    model.calibration = match meta.calibration {
        None => None,
        Some((kind, a, b)) => match kind.as_str() {
            "isotonic" if a.len() == b.len() && !a.is_empty() => {
                Some(Calibration::Isotonic(Isotonic { upper: floats(&a), value: floats(&b) }))
            }
            "platt" if a.len() == 2 => Some(Calibration::Platt(Platt { a: f64::from_bits(a[0]), b: f64::from_bits(a[1]) })),
            _ => return Err(corrupt(format!("unknown or malformed calibration `{kind}`"))),
        },
    };
    Ok(model)
}
