//! `omen profiles fit | list | show | diff | export`: behavioural request profiles from
//! `requests/` (DESIGN §1, §3).
//!
//! **fit**: every request becomes a vector ([`omen_features::feature::request`]); recent traffic
//! counts more, by an exponential decay of half-life `--half-life` (default 7 days) back from the
//! newest request; the fitting sample (at most `--sample` rows, default 100,000) is drawn with
//! probability proportional to that weight (Efraimidis–Spirakis, seeded), which is how the
//! decay reaches k-means; `k` is given or chosen by the silhouette ([`omen_models::kmeans`]);
//! then every request is assigned to its nearest profile and each profile is described: its
//! share of the (decayed) traffic, its request rate at the peak minute, its route, method,
//! status and user-agent mix, its payload-size, latency and inter-arrival percentiles, and its
//! most frequent requests (method and templated route: masked, no ids, no query values).
//!
//! A profile set's version is derived from its content (the same requests and parameters give
//! the same version, and re-running writes nothing new). It is stored at
//! `profiles/version=<v>/` (`profile_set.json`, the whole set; `profiles.parquet`, one row per
//! profile for analysts) and registered as a version of `omen-profiles`.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use omen_features::Store;
use omen_features::feature::request::{RequestRow, RequestSpace, SESSION_GAP_S};
use omen_features::schema::REQUESTS;
use omen_models::kmeans::{Clustering, KMeansParams};
use omen_models::registry::{AnyRegistry, Lineage, NewVersion, Registry};
use polars::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rfc3339_secs as rfc3339;
use crate::error::{Error, Result};

/// `omen profiles fit` options.
#[derive(Debug, Clone)]
pub struct FitArgs {
    pub service: Option<String>,
    pub k: Option<usize>,
    pub half_life: String,
    pub sample: usize,
    pub seed: u64,
    /// Route groups kept as their own column.
    pub max_route_groups: usize,
}

/// A percentile summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
}

/// One request of a profile's examples and mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteShare {
    pub method: String,
    pub route: String,
    /// Share of the profile's requests.
    pub share: f64,
    /// Median response size, bytes.
    pub bytes_p50: f64,
}

/// One profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// `p0`, `p1`, … by decreasing share.
    pub id: String,
    /// Share of the decayed traffic.
    pub share: f64,
    /// Share of the requests, undecayed.
    pub share_raw: f64,
    pub requests: u64,
    /// Requests per second of this profile in its busiest minute.
    pub rate_rps_peak: f64,
    /// The most frequent (method, route) pairs, at most 20, by share: the route mix and the
    /// example requests.
    pub routes: Vec<RouteShare>,
    pub methods: BTreeMap<String, f64>,
    pub status: BTreeMap<String, f64>,
    pub ua: BTreeMap<String, f64>,
    pub bytes: Dist,
    pub latency_ms: Dist,
    pub inter_arrival_s: Dist,
    /// The centroid in raw units, by column name.
    pub centroid: BTreeMap<String, f64>,
}

/// A versioned profile set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileSet {
    pub version: String,
    pub service: Option<String>,
    /// First and last request, RFC 3339.
    pub data_from: String,
    pub data_to: String,
    pub rows: u64,
    pub rows_fitted: u64,
    /// Requests per second of all traffic in its busiest minute.
    pub rate_rps_peak: f64,
    pub half_life: String,
    pub seed: u64,
    pub k: usize,
    /// `given` or `silhouette`.
    pub k_chosen_by: String,
    pub silhouette: Option<f64>,
    pub inertia: f64,
    pub candidates: Vec<(usize, f64)>,
    pub space: RequestSpace,
    pub clustering: Clustering,
    pub profiles: Vec<Profile>,
}

fn percentiles(v: &mut [f64]) -> Dist {
    if v.is_empty() {
        return Dist::default();
    }
    v.sort_unstable_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Dist { p50: q(0.5), p90: q(0.9), p99: q(0.99), mean: v.iter().sum::<f64>() / v.len() as f64 }
}

/// SplitMix64: the sampling's seeded generator.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// The requests, as columns.
struct Requests {
    ts: Vec<i64>,
    method: Vec<String>,
    route: Vec<String>,
    status: Vec<i32>,
    bytes: Vec<Option<i64>>,
    latency: Vec<Option<f64>>,
    ua: Vec<String>,
    gap: Vec<Option<f64>>,
}

impl Requests {
    fn row(&self, i: usize) -> RequestRow<'_> {
        RequestRow {
            ts: self.ts[i],
            method: &self.method[i],
            route: &self.route[i],
            status: self.status[i],
            bytes: self.bytes[i],
            latency_ms: self.latency[i],
            ua_class: &self.ua[i],
            inter_arrival_s: self.gap[i],
        }
    }
}

async fn read_requests(store: &Store, service: Option<&str>) -> Result<Requests> {
    let cols = ["ts", "method", "route", "status", "bytes", "latency_ms", "ua_class", "client"];
    let df = store
        .read_dataset_columns(&REQUESTS, Some(&cols), |parts| {
            service.is_none_or(|s| parts.iter().any(|(k, v)| k == "service" && omen_features::store::partition_segment("service", s) == format!("service={v}")))
        })
        .await?;
    let err = |c: &str, e: PolarsError| Error::input("requests/", format!("column `{c}`: {e}"));
    let strs = |c: &str| -> Result<Vec<String>> {
        Ok(df.column(c).map_err(|e| err(c, e))?.str().map_err(|e| err(c, e))?.iter().map(|s| s.unwrap_or("").to_owned()).collect())
    };
    let ts: Vec<i64> = df.column("ts").map_err(|e| err("ts", e))?.datetime().map_err(|e| err("ts", e))?.physical().iter().map(|v| v.unwrap_or(0)).collect();
    let status: Vec<i32> = df.column("status").map_err(|e| err("status", e))?.cast(&DataType::Int32)?.i32()?.iter().map(|v| v.unwrap_or(0)).collect();
    let bytes: Vec<Option<i64>> = df.column("bytes").map_err(|e| err("bytes", e))?.cast(&DataType::Int64)?.i64()?.iter().collect();
    let latency: Vec<Option<f64>> = df.column("latency_ms").map_err(|e| err("latency_ms", e))?.cast(&DataType::Float64)?.f64()?.iter().collect();
    let client = strs("client")?;
    let services: Vec<String> = match df.column("service") {
        Ok(c) => c.str().map_err(|e| err("service", e))?.iter().map(|s| s.unwrap_or("").to_owned()).collect(),
        Err(_) => vec![String::new(); df.height()],
    };
    // Inter-arrival per client (within a service): sort by (service, client, time).
    let n = df.height();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| (&services[a], &client[a], ts[a], a).cmp(&(&services[b], &client[b], ts[b], b)));
    let mut gap = vec![None; n];
    for w in order.windows(2) {
        let (p, i) = (w[0], w[1]);
        if services[p] == services[i] && client[p] == client[i] {
            gap[i] = Some(((ts[i] - ts[p]) as f64 / 1e6).min(SESSION_GAP_S));
        }
    }
    Ok(Requests { ts, method: strs("method")?, route: strs("route")?, status, bytes, latency, ua: strs("ua_class")?, gap })
}


/// What `omen profiles fit` did.
#[derive(Debug, Clone, Serialize)]
pub struct FitReport {
    pub version: String,
    /// False when this exact profile set was already stored.
    pub new: bool,
    pub k: usize,
    pub k_chosen_by: String,
    pub silhouette: Option<f64>,
    pub rows: u64,
    pub rows_fitted: u64,
    pub profiles: Vec<(String, f64, f64)>,
    pub outputs: Vec<String>,
    pub registered: Option<u64>,
    pub seconds: f64,
}

impl FitReport {
    pub fn human(&self) -> String {
        let mut s = format!(
            "profile set {}{}: {} profiles ({}{}) from {} requests ({} fitted)\n",
            self.version,
            if self.new { "" } else { " (unchanged)" },
            self.k,
            self.k_chosen_by,
            self.silhouette.map(|x| format!(", silhouette {x:.3}")).unwrap_or_default(),
            self.rows,
            self.rows_fitted
        );
        for (id, share, rps) in &self.profiles {
            s += &format!("  {id}: {:.1} % of traffic, {rps:.2} req/s at peak\n", share * 100.0);
        }
        for o in &self.outputs {
            s += &format!("  wrote {o}\n");
        }
        if let Some(v) = self.registered {
            s += &format!("  registered as omen-profiles version {v}\n");
        }
        s += &format!("  in {:.2}s\n", self.seconds);
        s
    }
}

/// Fits a profile set and stores (and registers) it.
pub async fn fit(store: &Store, registry: Option<&AnyRegistry>, args: &FitArgs) -> Result<FitReport> {
    let t0 = std::time::Instant::now();
    let half_life_us = omen_features::feature::parse_duration(&args.half_life).map_err(|m| Error::input("--half-life", m))?;
    if half_life_us <= 0 {
        return Err(Error::input("--half-life", "must be positive"));
    }
    if args.sample < 10 {
        return Err(Error::input("--sample", "must be at least 10"));
    }
    let req = read_requests(store, args.service.as_deref()).await?;
    let n = req.ts.len();
    if n == 0 {
        return Err(Error::input(
            format!("{}/requests/", store.url()),
            format!("no requests{}: ingest access logs first (`omen ingest logs`)", args.service.as_ref().map(|s| format!(" of service `{s}`")).unwrap_or_default()),
        ));
    }
    let t_max = *req.ts.iter().max().unwrap_or(&0);
    let t_min = *req.ts.iter().min().unwrap_or(&0);
    let weight = |i: usize| 0.5f64.powf((t_max - req.ts[i]) as f64 / half_life_us as f64);
    // The fitting sample: weighted sampling without replacement, keys u^(1/w), the largest win.
    let mut rng = Rng(args.seed);
    let mut keyed: Vec<(f64, usize)> = (0..n).map(|i| (rng.next_f64().ln() / weight(i).max(1e-300), i)).collect();
    let take = args.sample.min(n);
    if take < n {
        keyed.select_nth_unstable_by(take - 1, |a, b| b.0.total_cmp(&a.0));
        keyed.truncate(take);
    }
    let mut sample: Vec<usize> = keyed.into_iter().map(|(_, i)| i).collect();
    sample.sort_unstable();
    let space = RequestSpace::fit(sample.iter().map(|&i| (req.row(i), 1.0)), args.max_route_groups);
    let d = space.columns().len();
    let x: Vec<f64> = sample.iter().flat_map(|&i| space.vector(&req.row(i))).collect();
    let params = KMeansParams { k: args.k, seed: args.seed, ..Default::default() }.check()?;
    let clustering = tokio::task::block_in_place(|| params.fit(&x, d))?;
    // Every request to its profile.
    let labels: Vec<usize> = tokio::task::block_in_place(|| (0..n).into_par_iter().map(|i| clustering.predict(&space.vector(&req.row(i)))).collect());
    let k = clustering.k;

    // Describe each cluster.
    #[derive(Default)]
    struct Acc {
        w: f64,
        n: u64,
        minutes: HashMap<i64, u32>,
        routes: HashMap<(String, String), (u64, Vec<f64>)>,
        methods: BTreeMap<String, u64>,
        status: BTreeMap<String, u64>,
        ua: BTreeMap<String, u64>,
        bytes: Vec<f64>,
        latency: Vec<f64>,
        gaps: Vec<f64>,
        raw_sum: Vec<f64>,
    }
    let mut acc: Vec<Acc> = (0..k).map(|_| Acc::default()).collect();
    let mut all_minutes: HashMap<i64, u32> = HashMap::new();
    for i in 0..n {
        let a = &mut acc[labels[i]];
        let r = req.row(i);
        a.w += weight(i);
        a.n += 1;
        *a.minutes.entry(r.ts.div_euclid(60_000_000)).or_default() += 1;
        *all_minutes.entry(r.ts.div_euclid(60_000_000)).or_default() += 1;
        let e = a.routes.entry((r.method.to_owned(), r.route.to_owned())).or_default();
        e.0 += 1;
        if e.1.len() < 1000 {
            e.1.push(r.bytes.unwrap_or(0) as f64);
        }
        *a.methods.entry(r.method.to_owned()).or_default() += 1;
        *a.status.entry(format!("{}xx", r.status / 100)).or_default() += 1;
        *a.ua.entry(r.ua_class.to_owned()).or_default() += 1;
        // At most 20,000 values per distribution, evenly over the profile's requests.
        if a.bytes.len() < 20_000 || a.n.is_multiple_of(7) {
            let slot = if a.bytes.len() < 20_000 { None } else { Some((a.n as usize / 7) % 20_000) };
            let vals = [r.bytes.map(|b| b as f64), r.latency_ms, r.inter_arrival_s];
            for (list, v) in [&mut a.bytes, &mut a.latency, &mut a.gaps].into_iter().zip(vals) {
                if let Some(v) = v.filter(|v| v.is_finite()) {
                    match slot {
                        Some(s) if s < list.len() => list[s] = v,
                        Some(_) => {}
                        None => list.push(v),
                    }
                }
            }
        }
        let raw = space.raw(&r);
        if a.raw_sum.is_empty() {
            a.raw_sum = vec![0.0; raw.len()];
        }
        for (s, v) in a.raw_sum.iter_mut().zip(raw) {
            *s += v;
        }
    }
    let total_w: f64 = acc.iter().map(|a| a.w).sum::<f64>().max(1e-300);
    let cols = space.columns();
    let mut profiles: Vec<(usize, Profile)> = acc
        .into_iter()
        .enumerate()
        .map(|(c, mut a)| {
            let share_of = |m: BTreeMap<String, u64>| m.into_iter().map(|(k, v)| (k, v as f64 / a.n.max(1) as f64)).collect::<BTreeMap<_, _>>();
            let mut routes: Vec<RouteShare> = a
                .routes
                .drain()
                .map(|((method, route), (count, mut b))| RouteShare { method, route, share: count as f64 / a.n.max(1) as f64, bytes_p50: percentiles(&mut b).p50 })
                .collect();
            routes.sort_by(|x, y| y.share.total_cmp(&x.share).then(x.route.cmp(&y.route)).then(x.method.cmp(&y.method)));
            routes.truncate(20);
            let centroid = cols.iter().cloned().zip(a.raw_sum.iter().map(|s| s / a.n.max(1) as f64)).collect();
            let p = Profile {
                id: String::new(),
                share: a.w / total_w,
                share_raw: a.n as f64 / n as f64,
                requests: a.n,
                rate_rps_peak: a.minutes.values().copied().max().unwrap_or(0) as f64 / 60.0,
                routes,
                methods: share_of(std::mem::take(&mut a.methods)),
                status: share_of(std::mem::take(&mut a.status)),
                ua: share_of(std::mem::take(&mut a.ua)),
                bytes: percentiles(&mut a.bytes),
                latency_ms: percentiles(&mut a.latency),
                inter_arrival_s: percentiles(&mut a.gaps),
                centroid,
            };
            (c, p)
        })
        .filter(|(_, p)| p.requests > 0)
        .collect();
    profiles.sort_by(|a, b| b.1.share.total_cmp(&a.1.share).then(a.0.cmp(&b.0)));
    // Reorder the centroids to the profile order, so profile `pI` is centroid I.
    let mut centroids = Vec::with_capacity(profiles.len() * d);
    for (i, (c, p)) in profiles.iter_mut().enumerate() {
        p.id = format!("p{i}");
        centroids.extend_from_slice(clustering.centroid(*c));
    }
    let clustering = Clustering { k: profiles.len(), centroids, ..clustering };
    let mut set = ProfileSet {
        version: String::new(),
        service: args.service.clone(),
        data_from: rfc3339(t_min),
        data_to: rfc3339(t_max),
        rows: n as u64,
        rows_fitted: take as u64,
        rate_rps_peak: all_minutes.values().copied().max().unwrap_or(0) as f64 / 60.0,
        half_life: args.half_life.clone(),
        seed: args.seed,
        k: clustering.k,
        k_chosen_by: if args.k.is_some() { "given" } else { "silhouette" }.into(),
        silhouette: clustering.silhouette,
        inertia: clustering.inertia,
        candidates: clustering.candidates.clone(),
        space,
        clustering,
        profiles: profiles.into_iter().map(|(_, p)| p).collect(),
    };
    let content = serde_json::to_vec(&set).map_err(|e| Error::input("profiles", e.to_string()))?;
    set.version = blake3::hash(&content).to_hex()[..12].to_string();

    let dir = format!("profiles/version={}", set.version);
    let json = serde_json::to_vec_pretty(&set).map_err(|e| Error::input("profiles", e.to_string()))?;
    let new = store.create(&format!("{dir}/profile_set.json"), Bytes::from(json.clone())).await?;
    let mut outputs = Vec::new();
    if new {
        let mut df = profiles_frame(&set)?;
        store.write_parquet(&format!("{dir}/profiles.parquet"), &mut df).await?;
        outputs = vec![format!("{}/{dir}/profile_set.json", store.url()), format!("{}/{dir}/profiles.parquet", store.url())];
    }
    let registered = match registry {
        Some(r) => register(r, &set, json).await?,
        None => None,
    };
    Ok(FitReport {
        version: set.version.clone(),
        new,
        k: set.k,
        k_chosen_by: set.k_chosen_by.clone(),
        silhouette: set.silhouette,
        rows: set.rows,
        rows_fitted: set.rows_fitted,
        profiles: set.profiles.iter().map(|p| (p.id.clone(), p.share, p.rate_rps_peak)).collect(),
        outputs,
        registered,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Registers the set as `omen-profiles` unless a version with its id is there already.
async fn register(registry: &AnyRegistry, set: &ProfileSet, json: Vec<u8>) -> Result<Option<u64>> {
    match registry.versions("omen-profiles").await {
        Ok(vs) => {
            if let Some(v) = vs.iter().find(|v| v.tags.get("profile_version") == Some(&set.version) && v.deleted_at.is_none()) {
                return Ok(Some(v.version));
            }
        }
        Err(omen_models::Error::NotFound { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let schema = omen_features::feature::FeatureSchema::new(
        set.space
            .columns()
            .into_iter()
            .map(|c| omen_features::feature::FeatureColumn { name: c, kind: omen_features::feature::Kind::Float, label: false, doc: String::new() })
            .collect(),
    );
    let mut metrics = BTreeMap::from([("k".to_string(), set.k as f64), ("inertia".to_string(), set.inertia), ("rows".to_string(), set.rows as f64)]);
    if let Some(s) = set.silhouette {
        metrics.insert("silhouette".into(), s);
    }
    let new = NewVersion {
        name: "omen-profiles".into(),
        artifact: Bytes::from(json),
        artifact_file: "profile_set.json".into(),
        format: "omen-profiles/1".into(),
        description: format!("request profile set {} ({} profiles)", set.version, set.k),
        metrics,
        params: BTreeMap::from([
            ("half_life".to_string(), set.half_life.clone()),
            ("seed".to_string(), set.seed.to_string()),
            ("k_chosen_by".to_string(), set.k_chosen_by.clone()),
        ]),
        schema,
        feature_set: None,
        lineage: Lineage {
            source: "requests/".into(),
            time_column: Some("ts".into()),
            time_from: Some(set.data_from.clone()),
            time_to: Some(set.data_to.clone()),
            rows: set.rows,
            rows_holdout: 0,
        },
        code_version: crate::registry::code_version(),
        tags: BTreeMap::from([("profile_version".to_string(), set.version.clone())]),
    };
    let v = registry.register(new, &mut |_| {}).await?;
    crate::registry::crown_first(registry, &v).await?;
    Ok(Some(v.version))
}

/// One row per profile: what analysts open.
fn profiles_frame(set: &ProfileSet) -> Result<DataFrame> {
    let p = &set.profiles;
    let mut cols = vec![
        Column::new("version".into(), vec![set.version.as_str(); p.len()]),
        Column::new("profile_id".into(), p.iter().map(|x| x.id.as_str()).collect::<Vec<_>>()),
        Column::new("share".into(), p.iter().map(|x| x.share).collect::<Vec<_>>()),
        Column::new("share_raw".into(), p.iter().map(|x| x.share_raw).collect::<Vec<_>>()),
        Column::new("requests".into(), p.iter().map(|x| x.requests).collect::<Vec<_>>()),
        Column::new("rate_rps".into(), p.iter().map(|x| x.rate_rps_peak).collect::<Vec<_>>()),
        Column::new(
            "top_routes".into(),
            p.iter().map(|x| x.routes.iter().take(5).map(|r| format!("{} {} {:.0}%", r.method, r.route, r.share * 100.0)).collect::<Vec<_>>().join("; ")).collect::<Vec<_>>(),
        ),
        Column::new("bytes_p50".into(), p.iter().map(|x| x.bytes.p50).collect::<Vec<_>>()),
        Column::new("latency_ms_p50".into(), p.iter().map(|x| x.latency_ms.p50).collect::<Vec<_>>()),
        Column::new("latency_ms_p99".into(), p.iter().map(|x| x.latency_ms.p99).collect::<Vec<_>>()),
    ];
    for c in set.space.columns() {
        cols.push(Column::new(format!("centroid__{c}").into(), p.iter().map(|x| x.centroid.get(&c).copied().unwrap_or(f64::NAN)).collect::<Vec<_>>()));
    }
    Ok(DataFrame::new_infer_height(cols)?)
}

/// Every stored profile set, oldest data first.
pub async fn list(store: &Store) -> Result<Vec<ProfileSet>> {
    let mut out = Vec::new();
    for rel in store.list("profiles").await? {
        if rel.ends_with("/profile_set.json")
            && let Some(b) = store.get(&rel).await?
        {
            let set: ProfileSet = serde_json::from_slice(&b).map_err(|e| Error::input(&rel, e.to_string()))?;
            out.push(set);
        }
    }
    out.sort_by(|a, b| (&a.data_to, &a.version).cmp(&(&b.data_to, &b.version)));
    Ok(out)
}

/// One set: a version id (or a unique prefix of one), or `latest`.
pub async fn load(store: &Store, version: &str) -> Result<ProfileSet> {
    let all = list(store).await?;
    if version == "latest" {
        return all.into_iter().next_back().ok_or_else(|| Error::input("profiles/", "no profile set yet: run `omen profiles fit`"));
    }
    let mut hits: Vec<ProfileSet> = all.into_iter().filter(|s| s.version.starts_with(version)).collect();
    match hits.len() {
        1 => Ok(hits.remove(0)),
        0 => Err(Error::input("VERSION", format!("no profile set `{version}` (see `omen profiles list`)"))),
        _ => Err(Error::input("VERSION", format!("`{version}` names {} profile sets; give more of the id", hits.len()))),
    }
}

/// How a profile changed between two sets.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileChange {
    /// `grew`, `shrank`, `unchanged`, `appeared`, `vanished`.
    pub change: String,
    pub old: Option<String>,
    pub new: Option<String>,
    pub share_old: f64,
    pub share_new: f64,
    /// Distance between the matched centroids (standardised units of the old set's space).
    pub distance: Option<f64>,
    pub top_route: String,
}

/// `omen profiles diff V1 V2`: profiles matched by their nearest centroids (in V1's space, both
/// sets' raw centroids standardised alike), closest pairs first; a pair further apart than
/// `max_distance` is not the same profile. A share that moved by at least a percentage point grew
/// or shrank.
pub fn diff(a: &ProfileSet, b: &ProfileSet, max_distance: f64) -> Vec<ProfileChange> {
    let cols = a.space.columns();
    let vec_of = |p: &Profile| -> Vec<f64> {
        let mut v: Vec<f64> = cols.iter().map(|c| p.centroid.get(c).copied().unwrap_or(0.0)).collect();
        a.space.scale(&mut v);
        v
    };
    let (va, vb): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (a.profiles.iter().map(vec_of).collect(), b.profiles.iter().map(vec_of).collect());
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, x) in va.iter().enumerate() {
        for (j, y) in vb.iter().enumerate() {
            pairs.push((x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f64>().sqrt(), i, j));
        }
    }
    pairs.sort_by(|p, q| p.0.total_cmp(&q.0));
    let (mut used_a, mut used_b) = (vec![false; va.len()], vec![false; vb.len()]);
    let mut out = Vec::new();
    for (dist, i, j) in pairs {
        if used_a[i] || used_b[j] || dist > max_distance {
            continue;
        }
        used_a[i] = true;
        used_b[j] = true;
        let (pa, pb) = (&a.profiles[i], &b.profiles[j]);
        let delta = pb.share - pa.share;
        out.push(ProfileChange {
            change: if delta >= 0.01 { "grew" } else if delta <= -0.01 { "shrank" } else { "unchanged" }.into(),
            old: Some(pa.id.clone()),
            new: Some(pb.id.clone()),
            share_old: pa.share,
            share_new: pb.share,
            distance: Some(dist),
            top_route: pb.routes.first().map(|r| format!("{} {}", r.method, r.route)).unwrap_or_default(),
        });
    }
    for (i, p) in a.profiles.iter().enumerate().filter(|(i, _)| !used_a[*i]) {
        let _ = i;
        out.push(ProfileChange { change: "vanished".into(), old: Some(p.id.clone()), new: None, share_old: p.share, share_new: 0.0, distance: None, top_route: p.routes.first().map(|r| format!("{} {}", r.method, r.route)).unwrap_or_default() });
    }
    for (j, p) in b.profiles.iter().enumerate().filter(|(j, _)| !used_b[*j]) {
        let _ = j;
        out.push(ProfileChange { change: "appeared".into(), old: None, new: Some(p.id.clone()), share_old: 0.0, share_new: p.share, distance: None, top_route: p.routes.first().map(|r| format!("{} {}", r.method, r.route)).unwrap_or_default() });
    }
    out
}

/// Scaling of an export (and of `omen load run --profile`).
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Virtual users (Locust users, k6 pre-allocated VUs).
    pub users: usize,
    /// Multiplier of the rate.
    pub stress: f64,
    /// The rate as a percentage of the set's peak rate.
    pub percent_of_peak: f64,
    /// Run time of the k6 scenarios ("10m").
    pub duration: String,
    pub seed: u64,
}

impl ExportOptions {
    /// Total requests per second: the peak rate × percent / 100 × stress.
    pub fn rate(&self, set: &ProfileSet) -> f64 {
        set.rate_rps_peak * self.percent_of_peak / 100.0 * self.stress
    }

    pub fn check(&self) -> Result<()> {
        if self.users == 0 {
            return Err(Error::input("--users", "must be at least 1"));
        }
        if !(self.stress > 0.0 && self.stress.is_finite()) {
            return Err(Error::input("--stress", "must be a positive number"));
        }
        if !(self.percent_of_peak > 0.0 && self.percent_of_peak.is_finite()) {
            return Err(Error::input("--percent-of-peak", "must be a positive number"));
        }
        Ok(())
    }
}

/// `(profile id, method, route, weight)` of every request kind, the weights summing to 1: the
/// profile's share times the route's share within the profile (its top routes, renormalised).
pub fn request_mix(set: &ProfileSet) -> Vec<(String, String, String, f64)> {
    let mut out = Vec::new();
    for p in &set.profiles {
        let total: f64 = p.routes.iter().map(|r| r.share).sum();
        if total <= 0.0 {
            continue;
        }
        for r in &p.routes {
            out.push((p.id.clone(), r.method.clone(), r.route.clone(), p.share * r.share / total));
        }
    }
    let sum: f64 = out.iter().map(|x| x.3).sum::<f64>().max(1e-300);
    for x in &mut out {
        x.3 /= sum;
    }
    out
}

fn py_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A Locust locustfile: one user class whose users each send `rate / users` requests per
/// second (`constant_throughput`), every request drawn from the profile set's request mix, named
/// `<profile> <METHOD> <route>` in Locust's statistics; route placeholders (`{id}`, `{uuid}`,
/// `{hash}`, `{email}`, `{token}`) filled with seeded random values.
pub fn export_locust(set: &ProfileSet, o: &ExportOptions) -> Result<String> {
    o.check()?;
    let rate = o.rate(set);
    let mix = request_mix(set);
    let mut s = String::new();
    s += &format!(
        "# Locust load for omen profile set {} ({} profiles, data {} to {}).\n# Generated by `omen profiles export`: {:.3} req/s in all ({}% of the peak {:.3} req/s, stress {}), {} users.\n",
        set.version, set.k, set.data_from, set.data_to, rate, o.percent_of_peak, set.rate_rps_peak, o.stress, o.users
    );
    s += "# Run: locust -f THIS_FILE --headless --host http://TARGET -u USERS -r USERS --run-time 10m\n";
    s += "import itertools\nimport random\nimport uuid\n\nfrom locust import HttpUser, constant_throughput, task\n\n";
    s += &format!("PROFILE_SET = {}\nSEED = {}\nTOTAL_RPS = {rate:.6}\nUSERS = {}\n", py_str(&set.version), o.seed, o.users);
    s += "# (profile, method, route, weight)\nMIX = [\n";
    for (p, m, r, w) in &mix {
        s += &format!("    ({}, {}, {}, {w:.9}),\n", py_str(p), py_str(m), py_str(r));
    }
    s += "]\nWEIGHTS = [m[3] for m in MIX]\n_ids = itertools.count()\n\n\n";
    s += r#"def fill(route, rng):
    out, i = [], 0
    while i < len(route):
        j = route.find("{", i)
        if j < 0:
            out.append(route[i:])
            break
        k = route.find("}", j)
        if k < 0:
            out.append(route[i:])
            break
        out.append(route[i:j])
        name = route[j + 1:k]
        if name == "uuid":
            out.append(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        elif name in ("hash", "token"):
            out.append("%032x" % rng.getrandbits(128))
        elif name == "email":
            out.append("user%d@example.com" % rng.randrange(10**6))
        else:
            out.append(str(rng.randrange(1, 10**6)))
        i = k + 1
    return "".join(out)


class OmenProfiles(HttpUser):
    wait_time = constant_throughput(TOTAL_RPS / USERS)

    def on_start(self):
        self.rng = random.Random(SEED * 1_000_003 + next(_ids))

    @task
    def request(self):
        profile, method, route, _ = self.rng.choices(MIX, weights=WEIGHTS)[0]
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        headers = {"content-type": "application/json"} if body else None
        self.client.request(method, fill(route, self.rng), name="%s %s %s" % (profile, method, route), data=body, headers=headers)
"#;
    Ok(s)
}

/// A k6 script: one `constant-arrival-rate` scenario per profile at its share of the rate
/// (per minute, so small rates keep their precision), each drawing its requests from the
/// profile's route mix. `TARGET` comes from the environment (`k6 run -e TARGET=http://…`).
pub fn export_k6(set: &ProfileSet, o: &ExportOptions) -> Result<String> {
    o.check()?;
    let rate = o.rate(set);
    let mut s = format!(
        "// k6 load for omen profile set {} ({} profiles, data {} to {}).\n// Generated by `omen profiles export`: {:.3} req/s in all ({}% of the peak {:.3} req/s, stress {}).\n// Run: k6 run -e TARGET=http://host:port THIS_FILE\nimport http from 'k6/http';\n\nconst TARGET = __ENV.TARGET || 'http://127.0.0.1:8080';\n\n",
        set.version, set.k, set.data_from, set.data_to, rate, o.percent_of_peak, set.rate_rps_peak, o.stress
    );
    let mut scenarios = String::new();
    let mut routes = String::new();
    let mut funcs = String::new();
    let n = set.profiles.len().max(1);
    for p in &set.profiles {
        let per_min = (rate * p.share * 60.0).round().max(1.0) as u64;
        let vus = o.users.div_ceil(n).max(1);
        scenarios += &format!(
            "    {id}: {{ executor: 'constant-arrival-rate', rate: {per_min}, timeUnit: '1m', duration: '{}', preAllocatedVUs: {vus}, maxVUs: {}, exec: '{id}' }},\n",
            o.duration,
            vus * 4,
            id = p.id
        );
        let total: f64 = p.routes.iter().map(|r| r.share).sum::<f64>().max(1e-300);
        routes += &format!("  {}: [\n", p.id);
        for r in &p.routes {
            routes += &format!("    [{}, {}, {:.9}],\n", py_str(&r.method), py_str(&r.route), r.share / total);
        }
        routes += "  ],\n";
        funcs += &format!("export function {id}() {{ hit('{id}'); }}\n", id = p.id);
    }
    s += &format!("export const options = {{\n  scenarios: {{\n{scenarios}  }},\n}};\n\nconst ROUTES = {{\n{routes}}};\n\n");
    s += r#"function fill(route) {
  return route.replace(/\{([a-z_]+)\}/g, (_, name) => {
    if (name === 'uuid') return crypto.randomUUID ? crypto.randomUUID() : '00000000-0000-4000-8000-' + String(Math.floor(Math.random() * 1e12)).padStart(12, '0');
    if (name === 'hash' || name === 'token') return [...Array(32)].map(() => Math.floor(Math.random() * 16).toString(16)).join('');
    if (name === 'email') return 'user' + Math.floor(Math.random() * 1e6) + '@example.com';
    return String(1 + Math.floor(Math.random() * 1e6));
  });
}

function hit(profile) {
  const list = ROUTES[profile];
  let u = Math.random(), pick = list[list.length - 1];
  for (const r of list) { if ((u -= r[2]) <= 0) { pick = r; break; } }
  const [method, route] = pick;
  const body = ['POST', 'PUT', 'PATCH'].includes(method) ? '{}' : null;
  http.request(method, TARGET + fill(route), body, { tags: { name: profile + ' ' + method + ' ' + route }, headers: body ? { 'content-type': 'application/json' } : {} });
}

"#;
    s += &funcs;
    Ok(s)
}

/// The profile set as `omen load run` streams: one per profile at its share, drawing its
/// routes by their share within it.
pub fn workload(set: &ProfileSet) -> crate::load::Workload {
    crate::load::Workload {
        streams: set
            .profiles
            .iter()
            .map(|p| crate::load::Stream {
                name: p.id.clone(),
                share: p.share,
                requests: p
                    .routes
                    .iter()
                    .map(|r| crate::load::RequestSpec {
                        method: r.method.clone(),
                        path: r.route.clone(),
                        body_bytes: if matches!(r.method.as_str(), "POST" | "PUT" | "PATCH") { 2 } else { 0 },
                        weight: r.share,
                    })
                    .collect(),
            })
            .collect(),
    }
}
