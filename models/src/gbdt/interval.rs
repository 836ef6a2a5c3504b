//! A regressor with prediction intervals: the point model (squared error) and, per nominal
//! coverage, two quantile models at the interval's ends with their split-conformal correction
//! (the `omen-performance` artifact, format `omen-gbdt-interval/1`).
//!
//! ```text
//! "OMENGBIV" | format version u32 | body length u64 | body | BLAKE3(all before) 32 bytes
//! body: band count u32 | per band: coverage f64 bits, q f64 bits | point model | per band: lo, hi
//!       (each model: length u64 | an OMENGBDT file, itself checksummed)
//! ```

use super::Gbdt;
use crate::calibrate::Conformal;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"OMENGBIV";
/// The format version this build writes and reads.
pub const INTERVAL_FORMAT_VERSION: u32 = 1;

/// One interval of nominal `conformal.coverage`.
#[derive(Debug, Clone)]
pub struct Band {
    pub lo: Gbdt,
    pub hi: Gbdt,
    pub conformal: Conformal,
}

impl Band {
    /// The band's interval for the row `x` whose point prediction is `point`: the conformal
    /// interval of the quantile models, widened to contain the point.
    pub fn around(&self, x: &[f64], point: f64) -> (f64, f64) {
        let (lo, hi) = self.conformal.interval(self.lo.predict(x), self.hi.predict(x));
        (lo.min(point), hi.max(point))
    }
}

/// The point model and its intervals.
#[derive(Debug, Clone)]
pub struct IntervalModel {
    pub point: Gbdt,
    pub bands: Vec<Band>,
}

fn corrupt(m: impl Into<String>) -> Error {
    Error::Artifact { message: m.into() }
}

impl IntervalModel {
    /// The point prediction and, per band, (coverage, lower, upper).
    pub fn predict(&self, x: &[f64]) -> (f64, Vec<(f64, f64, f64)>) {
        let point = self.point.predict(x);
        let bands = self
            .bands
            .iter()
            .map(|b| {
                let (lo, hi) = b.around(x, point);
                (b.conformal.coverage, lo, hi)
            })
            .collect();
        (point, bands)
    }

    /// The interval of the band of `coverage` (0.8, 0.95) for the row `x`, when there is one.
    pub fn interval(&self, x: &[f64], point: f64, coverage: f64) -> Option<(f64, f64)> {
        self.bands.iter().find(|b| (b.conformal.coverage - coverage).abs() < 1e-9).map(|b| b.around(x, point))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&(self.bands.len() as u32).to_le_bytes());
        for b in &self.bands {
            body.extend_from_slice(&b.conformal.coverage.to_bits().to_le_bytes());
            body.extend_from_slice(&b.conformal.q.to_bits().to_le_bytes());
        }
        let mut push = |m: &Gbdt| {
            let bytes = m.to_bytes();
            body.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            body.extend_from_slice(&bytes);
        };
        push(&self.point);
        for b in &self.bands {
            push(&b.lo);
            push(&b.hi);
        }
        let mut out = Vec::with_capacity(body.len() + 52);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&INTERVAL_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&body);
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// Reads an interval model, or a plain GBDT file as a model without intervals. Every model
    /// inside is checked against `expected_schema` when given.
    pub fn from_bytes(bytes: &[u8], expected_schema: Option<&str>) -> Result<IntervalModel> {
        if bytes.starts_with(b"OMENGBDT") {
            return Ok(IntervalModel { point: Gbdt::from_bytes(bytes, expected_schema)?, bands: Vec::new() });
        }
        if bytes.len() < 20 + 32 || &bytes[..8] != MAGIC {
            return Err(corrupt("not an omen interval model (bad magic or truncated)"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != INTERVAL_FORMAT_VERSION {
            return Err(corrupt(format!("interval format version {version}; this build reads {INTERVAL_FORMAT_VERSION}")));
        }
        let body_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
        if 20usize.checked_add(body_len).and_then(|n| n.checked_add(32)) != Some(bytes.len()) {
            return Err(corrupt("truncated or padded interval model"));
        }
        let (content, sum) = bytes.split_at(20 + body_len);
        if blake3::hash(content).as_bytes() != sum {
            return Err(corrupt("checksum mismatch: the interval model file is corrupt"));
        }
        let mut r = Cursor(&content[20..]);
        let n = r.u32()? as usize;
        if n > 16 {
            return Err(corrupt(format!("{n} bands")));
        }
        let mut conformal = Vec::with_capacity(n);
        for _ in 0..n {
            let coverage = f64::from_bits(r.u64()?);
            let q = f64::from_bits(r.u64()?);
            conformal.push(Conformal { coverage, q });
        }
        let point = r.model(expected_schema)?;
        let mut bands = Vec::with_capacity(n);
        for c in conformal {
            let lo = r.model(expected_schema)?;
            let hi = r.model(expected_schema)?;
            bands.push(Band { lo, hi, conformal: c });
        }
        Ok(IntervalModel { point, bands })
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt("the interval model body ends early"));
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
    fn model(&mut self, expected_schema: Option<&str>) -> Result<Gbdt> {
        let len = usize::try_from(self.u64()?).map_err(|_| corrupt("model length"))?;
        Gbdt::from_bytes(self.take(len)?, expected_schema)
    }
}
