//! Feature values and the feature schema (names, kinds, a hash).

use polars::prelude::DataType;

/// The kind of a feature column. Every column is nullable: null is NODATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Float,
    Int,
    Bool,
    /// A categorical value (a state, an outcome).
    Str,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Float => "float",
            Kind::Int => "int",
            Kind::Bool => "bool",
            Kind::Str => "str",
        }
    }

    /// The Polars type of the column.
    pub fn dtype(self) -> DataType {
        match self {
            Kind::Float => DataType::Float64,
            Kind::Int => DataType::Int64,
            Kind::Bool => DataType::Boolean,
            Kind::Str => DataType::String,
        }
    }
}

/// One feature value. Floats are always finite: a statistic without a finite value is `None`,
/// never NaN.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Float(Option<f64>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Str(Option<String>),
}

impl Value {
    /// A float feature: non-finite values become `None`.
    pub fn float(v: Option<f64>) -> Value {
        Value::Float(v.filter(|x| x.is_finite()))
    }

    pub fn kind(&self) -> Kind {
        match self {
            Value::Float(_) => Kind::Float,
            Value::Int(_) => Kind::Int,
            Value::Bool(_) => Kind::Bool,
            Value::Str(_) => Kind::Str,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Float(None) | Value::Int(None) | Value::Bool(None) | Value::Str(None))
    }

    /// Equality that holds floats to their bits (the parity test's "identical").
    pub fn identical(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.map(f64::to_bits) == b.map(f64::to_bits),
            _ => self == other,
        }
    }
}

/// One column of the feature table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeatureColumn {
    pub name: String,
    pub kind: Kind,
    /// Whether the column is a label (an outcome, known only after the deployment), not an input.
    #[serde(default)]
    pub label: bool,
    pub doc: String,
}

/// The columns of a feature table, in order, with a hash of their names, kinds and roles.
/// Written beside the data (`features/_schema.json`) and carried by every model trained on it,
/// so that a reader with another schema is refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeatureSchema {
    pub columns: Vec<FeatureColumn>,
    /// BLAKE3 of `name\tkind\trole\n` for every column, hex; see [`FeatureSchema::compute_hash`].
    pub hash: String,
}

impl FeatureSchema {
    pub fn new(columns: Vec<FeatureColumn>) -> FeatureSchema {
        let hash = Self::compute_hash(&columns);
        FeatureSchema { columns, hash }
    }

    /// The hash of a column list: independent of the docs.
    pub fn compute_hash(columns: &[FeatureColumn]) -> String {
        let mut hasher = blake3::Hasher::new();
        for c in columns {
            let role = if c.label { "label" } else { "input" };
            hasher.update(format!("{}\t{}\t{}\n", c.name, c.kind.as_str(), role).as_bytes());
        }
        hasher.finalize().to_hex().to_string()
    }

    /// Whether `hash` matches the columns (a schema file edited by hand does not).
    pub fn verify(&self) -> bool {
        Self::compute_hash(&self.columns) == self.hash
    }

    /// The model inputs (labels excluded).
    pub fn inputs(&self) -> impl Iterator<Item = &FeatureColumn> {
        self.columns.iter().filter(|c| !c.label)
    }

    /// The labels.
    pub fn labels(&self) -> impl Iterator<Item = &FeatureColumn> {
        self.columns.iter().filter(|c| c.label)
    }

    /// The position of the column called `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

impl Value {
    /// The value as a model input: floats and integers as they are, booleans 1 or 0, null (and a
    /// string, which enters a model only through [`encode_indicator`]) as NaN, the GBDT's missing.
    pub fn as_input(&self) -> f64 {
        match self {
            Value::Float(Some(x)) => *x,
            Value::Int(Some(i)) => *i as f64,
            Value::Bool(Some(b)) => f64::from(u8::from(*b)),
            _ => f64::NAN,
        }
    }
}

/// The indicator input `column=level` of a string column: 1 when the value is `level`, 0 when it
/// is another, NaN when it is null. `omen train` builds its indicator columns with this function
/// and `omen-serve` its inputs, so both encode alike.
pub fn encode_indicator(value: Option<&str>, level: &str) -> f64 {
    match value {
        Some(v) => f64::from(u8::from(v == level)),
        None => f64::NAN,
    }
}

/// Maps rows of a feature schema onto a model's inputs, in the model's order: a model feature is
/// a column of the schema, or `column=level` for an indicator of a string column.
#[derive(Debug, Clone)]
pub struct InputEncoder {
    slots: Vec<(usize, Option<String>)>,
}

impl InputEncoder {
    /// Plans the mapping; the error lists the model features the schema cannot give.
    pub fn new(schema: &FeatureSchema, model_features: &[String]) -> std::result::Result<InputEncoder, Vec<String>> {
        let index: std::collections::HashMap<&str, usize> =
            schema.columns.iter().enumerate().map(|(i, c)| (c.name.as_str(), i)).collect();
        let mut slots = Vec::with_capacity(model_features.len());
        let mut missing = Vec::new();
        for f in model_features {
            if let Some(&i) = index.get(f.as_str()) {
                slots.push((i, None));
            } else if let Some((col, level)) = f.split_once('=')
                && let Some(&i) = index.get(col)
                && schema.columns[i].kind == Kind::Str
            {
                slots.push((i, Some(level.to_owned())));
            } else {
                missing.push(f.clone());
            }
        }
        if missing.is_empty() { Ok(InputEncoder { slots }) } else { Err(missing) }
    }

    /// The model's input vector of one row (in schema order).
    pub fn encode(&self, row: &[Value]) -> Vec<f64> {
        self.slots
            .iter()
            .map(|(i, level)| match (level, row.get(*i)) {
                (Some(level), Some(Value::Str(v))) => encode_indicator(v.as_deref(), level),
                (Some(_), _) | (None, None) => f64::NAN,
                (None, Some(v)) => v.as_input(),
            })
            .collect()
    }

    /// Which schema column feeds each model input.
    pub fn columns(&self) -> impl Iterator<Item = usize> + '_ {
        self.slots.iter().map(|(i, _)| *i)
    }
}
