//! Many tenants in one `host run --tenants tenants.toml --flows DIR`: each tenant's flows run side by
//! side with its own credential, allow-list and limits; a hostile or greedy tenant ends only its own
//! partitions, naming the limit it hit, while the others finish with exact counts; the summary has each
//! tenant's figures; the log names the tenant. A single flow's `[tenant]` section sets its limits, and
//! a flows folder that names an unknown tenant is refused before any request. Past the system's limit
//! on threads, the flows that cannot start theirs fail, saying so, and the others finish. A tenant
//! whose destination hangs as it opens holds up no other tenant.

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;

use serde_json::Value;
use support::{
    SilentServer, TOKEN, artifacts, host_with_env, host_within, read_jsonl_object, simulator, sqlite_ids, temp_dir,
};

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// A flow file for `tenant` reading `objects` (`(object, project)` pairs) into `dest`.
fn flow(tenant: &str, plugin: &Path, base: &str, objects: &[(&str, &str)], dest: &str) -> String {
    let mut text = format!(
        "plugin = {plugin:?}\n[tenant]\nid = \"{tenant}\"\n[connection]\nbase_url = \"{base}\"\n[destination]\nurl = \"{dest}\"\n"
    );
    for (object, project) in objects {
        text.push_str(&format!("[[objects]]\nobject = \"{object}\"\nprojects = [\"{project}\"]\n"));
    }
    text
}

/// A `[[tenants]]` entry for `id`: one partition at a time, the token from `GITLAB_TOKEN`.
fn tenant_one_at_a_time(id: &str) -> String {
    format!(
        "[[tenants]]\nid = \"{id}\"\nconcurrency = 1\ncredential = {{ source = \"env\", var = \"GITLAB_TOKEN\" }}\n"
    )
}

/// A folder `flows` in `dir`, for the flow files of a `--tenants` run.
fn flows_folder(dir: &Path) -> std::path::PathBuf {
    let flows = dir.join("flows");
    std::fs::create_dir(&flows).unwrap();
    flows
}

/// `host run --tenants TENANTS --flows FLOWS --summary-json SUMMARY`.
fn tenants_run<'a>(tenants: &'a Path, flows: &'a Path, summary: &'a Path) -> [&'a str; 7] {
    let path = |p: &'a Path| p.to_str().unwrap();
    ["run", "--tenants", path(tenants), "--flows", path(flows), "--summary-json", path(summary)]
}

#[test]
fn tenants_run_side_by_side_and_a_hostile_or_greedy_one_ends_only_its_own_partitions() {
    let sim = simulator();
    let world = sim.world();
    let dir = temp_dir();
    let (flows, out) = (dir.path().join("flows"), dir.path());
    std::fs::create_dir(&flows).unwrap();
    let (gitlab, hostile, base) = (&artifacts().gitlab_wasm, &artifacts().hostile_wasm, sim.base_url());
    // A project of a few pages of issues, for the hostile tenant's healthy-looking object.
    let small = world
        .projects()
        .iter()
        .find(|p| p.issues_enabled && (101..=400).contains(&world.issues(p.id).len()))
        .map(|p| p.id.to_string())
        .unwrap();

    write(
        &dir.path().join("tenants.toml"),
        "[[tenants]]\nid = \"acme\"\ncredential = { source = \"env\", var = \"ACME_TOKEN\" }\nconcurrency = 2\n\
         [[tenants]]\nid = \"globex\"\ncredential = { source = \"env\", var = \"GLOBEX_TOKEN\" }\n\
         [[tenants]]\nid = \"mallory\"\ncredential = { source = \"env\", var = \"MALLORY_TOKEN\" }\n\
         call_timeout_secs = 2\nmemory_mib = 32\nmax_response_bytes = 4000\n\
         [[tenants]]\nid = \"greedy\"\ncredential = { source = \"env\", var = \"GREEDY_TOKEN\" }\nmax_run_bytes = 20000\n",
    );
    let acme_db = out.join("acme.db");
    let acme_dest = format!("sqlite:{}", acme_db.display());
    write(
        &flows.join("acme.toml"),
        &flow("acme", gitlab, &base, &[("issue", "demo/api"), ("project_merge_request", "demo/api")], &acme_dest),
    );
    let globex_dest = format!("jsonl:{}", out.join("globex").display());
    write(&flows.join("globex.toml"), &flow("globex", gitlab, &base, &[("issue", "demo/website")], &globex_dest));
    let mallory_dest = format!("jsonl:{}", out.join("mallory").display());
    write(
        &flows.join("mallory.toml"),
        &flow(
            "mallory",
            hostile,
            &base,
            &[("infinite_loop", &small), ("memory_bomb", &small), ("healthy", &small)],
            &mallory_dest,
        ),
    );
    let greedy_dest = format!("jsonl:{}", out.join("greedy").display());
    write(&flows.join("greedy.toml"), &flow("greedy", gitlab, &base, &[("issue", "demo/api")], &greedy_dest));

    let summary_path = out.join("summary.json");
    let tenants = dir.path().join("tenants.toml");
    let args = tenants_run(&tenants, &flows, &summary_path);
    let env = [
        ("ACME_TOKEN", TOKEN),
        ("GLOBEX_TOKEN", TOKEN),
        ("MALLORY_TOKEN", TOKEN),
        ("GREEDY_TOKEN", TOKEN),
        ("HOST_LOG", "warn,plugin=debug"),
    ];
    let run = host_with_env(&args, None, &env);

    assert!(!run.success, "{}", run.output());
    let error = run.error_line();
    assert!(error.contains("2 of 4 flows had failures, for tenant(s) greedy, mallory"), "{error}");
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    let tenant = |id: &str| {
        summary["tenants"].as_array().unwrap().iter().find(|t| t["tenant"] == id).cloned().unwrap_or_else(|| {
            panic!("no tenant {id} in {summary:#}");
        })
    };
    let partitions = |flow: &str| {
        let flow = summary["flows"].as_array().unwrap().iter().find(|f| f["flow"] == flow).unwrap();
        flow["partitions"].as_array().unwrap().clone()
    };

    // The well-behaved tenants read everything, exactly.
    let api = world.project_by_ref("demo/api").unwrap().id;
    let website = world.project_by_ref("demo/website").unwrap().id;
    let expected_issues: std::collections::BTreeSet<i64> =
        world.issues(api).iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(sqlite_ids(&acme_db, "issue"), expected_issues);
    assert_eq!(sqlite_ids(&acme_db, "project_merge_request").len(), world.merge_requests(api).len());
    assert_eq!(read_jsonl_object(&out.join("globex"), "issue").len(), world.issues(website).len());
    let acme = tenant("acme");
    assert_eq!(acme["errors"], serde_json::json!([]), "{acme:#}");
    assert_eq!(acme["records"], (world.issues(api).len() + world.merge_requests(api).len()) as u64);
    for figure in ["requests", "bytes_in", "bytes_out", "pages"] {
        assert!(acme[figure].as_u64().unwrap() > 0, "acme's {figure}: {acme:#}");
    }
    assert!(acme["cpu_seconds"].as_f64().unwrap() > 0.0, "{acme:#}");
    assert!(acme["destination_cpu_seconds"].as_f64().unwrap() > 0.0, "{acme:#}");
    assert!(acme["wall_seconds"].as_f64().unwrap() >= acme["cpu_seconds"].as_f64().unwrap() / 4.0);
    assert_eq!(tenant("globex")["errors"], serde_json::json!([]));

    // The hostile tenant's partitions each ended alone, naming the tenant's limit they hit.
    let mallory = partitions("mallory");
    let reason = |object: &str| {
        let p = mallory.iter().find(|p| p["object"] == object).unwrap();
        assert_eq!(p["status"], "failed", "{p:#}");
        p["reason"].as_str().unwrap().to_owned()
    };
    assert!(reason("infinite_loop").starts_with("the plugin exceeded its 2 s deadline per call"));
    assert!(reason("memory_bomb").starts_with("the plugin exceeded its 32 MiB memory limit"));
    assert_eq!(reason("healthy"), "a response exceeded the tenant's limit of 4000 bytes per response");
    assert_eq!(tenant("mallory")["errors"].as_array().unwrap().len(), 3);

    // The greedy tenant stopped at its byte budget for the run, and was not retried past it.
    let greedy = partitions("greedy");
    assert_eq!(greedy[0]["status"], "failed");
    assert_eq!(greedy[0]["reason"], "the tenant exceeded its limit of 20000 response bytes per run");
    assert!(greedy[0]["bytes_in"].as_u64().unwrap() < 400_000, "{:#}", greedy[0]);

    // The log names the tenant of each failure.
    let line = run.stderr.lines().find(|l| l.contains("partition failed: a response exceeded")).expect("logged");
    assert!(line.contains("tenant=\"mallory\""), "{line}");
    assert!(!run.output().contains(TOKEN));

    // Memory bombs stayed in their 32 MiB sandboxes: the whole process held well under a sandbox per
    // partition at the default 64 MiB.
    let peak = summary["peak_rss_bytes"].as_u64().expect("the summary reports the peak memory");
    assert!(peak < 512 << 20, "peak RSS {} MiB", peak >> 20);
}

#[test]
fn a_single_flows_tenant_section_sets_its_limits() {
    let sim = simulator();
    let world = sim.world();
    let dir = temp_dir();
    let project = world.projects().iter().find(|p| p.issues_enabled).map(|p| p.id.to_string()).unwrap();
    let dest = format!("jsonl:{}", dir.path().join("out").display());
    let mut text = flow("solo", &artifacts().hostile_wasm, &sim.base_url(), &[("memory_bomb", &project)], &dest);
    text = text.replace("id = \"solo\"\n", "id = \"solo\"\nmemory_mib = 16\n");
    let path = dir.path().join("solo.toml");
    write(&path, &text);
    let summary_path = dir.path().join("summary.json");
    let args = ["run", "--flow", path.to_str().unwrap(), "--summary-json", summary_path.to_str().unwrap()];
    let run = host_with_env(&args, Some(TOKEN), &[]);
    assert!(!run.success);
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["tenant"], "solo");
    let reason = summary["partitions"][0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("the plugin exceeded its 16 MiB memory limit"), "{reason}");
}

#[test]
fn a_flow_naming_an_unknown_tenant_is_refused_before_any_request() {
    let sim = simulator();
    let dir = temp_dir();
    let flows = flows_folder(dir.path());
    write(&dir.path().join("tenants.toml"), "[[tenants]]\nid = \"acme\"\n");
    let dest = format!("jsonl:{}", dir.path().join("out").display());
    write(&flows.join("a.toml"), &flow("acme", &artifacts().gitlab_wasm, &sim.base_url(), &[("issue", "1")], &dest));
    write(&flows.join("b.toml"), &flow("initech", &artifacts().gitlab_wasm, &sim.base_url(), &[("issue", "1")], &dest));
    let tenants = dir.path().join("tenants.toml");
    let args = ["run", "--tenants", tenants.to_str().unwrap(), "--flows", flows.to_str().unwrap()];
    let run = host_with_env(&args, Some(TOKEN), &[]);
    assert!(!run.success);
    let error = run.error_line();
    assert!(error.contains("b.toml:"), "{error}");
    assert!(error.contains("tenant: unknown tenant 'initech': the tenants file has acme"), "{error}");
    assert!(sim.requests().is_empty(), "no request before the flows are checked whole");
}

#[test]
fn tenants_planning_side_by_side_on_one_engine_do_not_wait_for_each_others_sandboxes() {
    // Three tenants of one partition at a time, each with a flow naming six projects: the engine has
    // two sandboxes per tenant, and each planning would look its six projects up with six at once.
    // It takes those that are free, never waiting for more while holding some.
    let sim = simulator();
    let world = sim.world();
    let dir = temp_dir();
    let flows = flows_folder(dir.path());
    let acme = world.projects_in_group(world.group_by_ref("acme").unwrap().id, true);
    let projects: Vec<&str> =
        acme.iter().filter(|p| p.issues_enabled).map(|p| p.path_with_namespace.as_str()).take(18).collect();
    let mut tenants = String::new();
    for (n, projects) in projects.chunks(6).enumerate() {
        tenants.push_str(&tenant_one_at_a_time(&format!("t{n}")));
        let dest = format!("jsonl:{}", dir.path().join(format!("out-{n}")).display());
        let pairs: Vec<(&str, &str)> = projects.iter().map(|p| ("issue", *p)).collect();
        write(
            &flows.join(format!("t{n}.toml")),
            &flow(&format!("t{n}"), &artifacts().gitlab_wasm, &sim.base_url(), &pairs, &dest),
        );
    }
    write(&dir.path().join("tenants.toml"), &tenants);
    let summary_path = dir.path().join("summary.json");
    let tenants = dir.path().join("tenants.toml");
    let args = tenants_run(&tenants, &flows, &summary_path);
    let run = host_within(std::time::Duration::from_secs(120), &args, Some(TOKEN), &[]);
    assert!(run.success, "{}", run.output());
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    let records: u64 = summary["tenants"].as_array().unwrap().iter().map(|t| t["records"].as_u64().unwrap()).sum();
    let expected: usize = acme
        .iter()
        .filter(|p| projects.contains(&p.path_with_namespace.as_str()))
        .map(|p| world.issues(p.id).len())
        .sum();
    assert_eq!(records, expected as u64);
}

#[test]
fn past_the_systems_limit_on_threads_the_flows_that_cannot_start_theirs_fail_saying_so() {
    // The limit is RLIMIT_NPROC, which binds a process of an unprivileged user only: as root, the host
    // is run as uid 65534 under a limit that lets its runtimes start but not every flow's two threads.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: it needs root, to run the host as another user under a limit on threads");
        return;
    }
    let sim = simulator();
    let world = sim.world();
    let dir = temp_dir();
    let root = dir.path();
    // Everything the host reads or writes, where uid 65534 may: the binaries copied out of the
    // workspace (whose folders it may not enter), the output and the compiled-plugin cache its own.
    let mode = |path: &Path, mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(root, 0o755);
    let (host, plugin, out, cache, flows) =
        (root.join("host"), root.join("gitlab.wasm"), root.join("out"), root.join("cache"), root.join("flows"));
    std::fs::copy(&artifacts().host, &host).unwrap();
    std::fs::copy(&artifacts().gitlab_wasm, &plugin).unwrap();
    for folder in [&out, &cache, &flows] {
        std::fs::create_dir(folder).unwrap();
        mode(folder, 0o777);
    }
    let acme = world.projects_in_group(world.group_by_ref("acme").unwrap().id, true);
    let projects: Vec<_> = acme.iter().filter(|p| p.issues_enabled).take(20).collect();
    let mut tenants = String::new();
    for (n, project) in projects.iter().enumerate() {
        tenants.push_str(&tenant_one_at_a_time(&format!("t{n}")));
        let dest = format!("jsonl:{}", out.join(format!("t{n}")).display());
        let id = project.id.to_string();
        write(
            &flows.join(format!("t{n}.toml")),
            &flow(&format!("t{n}"), &plugin, &sim.base_url(), &[("issue", &id)], &dest),
        );
    }
    write(&root.join("tenants.toml"), &tenants);
    let summary_path = out.join("summary.json");
    let tenants_path = root.join("tenants.toml");

    // The runtimes' threads (main, the main runtime's and the network's workers, one lane per core,
    // the epoch ticker, the progress log) and a few more: far fewer than 20 flows' 40.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let threads = 3 + 3 * cores + 4;
    let mut command = std::process::Command::new(&host);
    command
        .args(tenants_run(&tenants_path, &flows, &summary_path))
        .env_clear()
        .env("GITLAB_TOKEN", TOKEN)
        .env("HOST_CACHE_DIR", &cache)
        .env("RUST_BACKTRACE", "0")
        .uid(65534)
        .gid(65534);
    // SAFETY: setrlimit is async-signal-safe, and the closure touches nothing else.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: threads, rlim_max: threads };
            match libc::setrlimit(libc::RLIMIT_NPROC, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let run: support::HostRun = command.output().expect("running host").into();
    assert_eq!(run.code, Some(1), "{}", run.output());
    assert!(!run.output().contains("panicked"), "{}", run.output());
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    let flows = summary["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 20, "every flow is in the summary");
    let mut refused = 0;
    for flow in flows {
        let n: usize = flow["tenant"].as_str().unwrap()[1..].parse().unwrap();
        match flow["error"].as_str() {
            None => assert_eq!(flow["records"].as_u64(), Some(world.issues(projects[n].id).len() as u64)),
            Some(error) => {
                assert!(error.starts_with("cannot start a "), "{error}");
                assert!(error.contains("the system's limit on threads is reached (`ulimit -u`"), "{error}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "{}", run.output());
}

#[test]
fn a_tenant_whose_destination_hangs_as_it_opens_holds_up_no_other_tenant() {
    // More tenants whose PostgreSQL takes the connection and never answers than the async runtime has
    // threads, and one tenant into JSONL reading eight projects one at a time: that tenant's flow
    // finishes (its manifest is published) while the others still wait for their databases.
    let sim = simulator();
    let world = sim.world();
    let dir = temp_dir();
    let flows = flows_folder(dir.path());
    let silent = SilentServer::start();
    let stuck = std::thread::available_parallelism().map_or(1, |n| n.get()) + 1;
    let acme = world.projects_in_group(world.group_by_ref("acme").unwrap().id, true);
    let projects: Vec<_> = acme.iter().filter(|p| p.issues_enabled).take(stuck + 8).collect();
    let ids: Vec<String> = projects.iter().map(|p| p.id.to_string()).collect();
    let mut tenants = String::new();
    for (n, id) in ids[..stuck].iter().enumerate() {
        tenants.push_str(&tenant_one_at_a_time(&format!("stuck{n}")));
        let dest = format!("postgres://gitlab@127.0.0.1:{}/gitlab", silent.port);
        write(
            &flows.join(format!("stuck{n}.toml")),
            &flow(&format!("stuck{n}"), &artifacts().gitlab_wasm, &sim.base_url(), &[("issue", id)], &dest),
        );
    }
    tenants.push_str(&tenant_one_at_a_time("free"));
    let out = dir.path().join("out-free");
    let pairs: Vec<(&str, &str)> = ids[stuck..].iter().map(|id| ("issue", id.as_str())).collect();
    let dest = format!("jsonl:{}", out.display());
    write(&flows.join("free.toml"), &flow("free", &artifacts().gitlab_wasm, &sim.base_url(), &pairs, &dest));
    write(&dir.path().join("tenants.toml"), &tenants);
    let summary_path = dir.path().join("summary.json");
    let tenants_path = dir.path().join("tenants.toml");
    let log = dir.path().join("host.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut child = support::host_command(&tenants_run(&tenants_path, &flows, &summary_path), Some(TOKEN), &[])
        .stderr(log_file.try_clone().unwrap())
        .stdout(log_file)
        .spawn()
        .expect("running host");
    let published = || std::fs::read_dir(out.join("_manifests")).is_ok_and(|mut files| files.next().is_some());
    let waiting = std::time::Instant::now();
    while !published() && waiting.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let finished_beside_them = published();
    let held = silent.release();
    let status = child.wait().unwrap();
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(finished_beside_them, "the JSONL tenant waited for the others' databases: {output}");
    assert_eq!(held, stuck, "{output}");
    assert_eq!(status.code(), Some(1), "{output}");
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path).unwrap()).unwrap();
    for flow in summary["flows"].as_array().unwrap() {
        match flow["tenant"].as_str().unwrap() {
            "free" => {
                assert_eq!(flow["error"], Value::Null, "{output}");
                let issues: usize = projects[stuck..].iter().map(|p| world.issues(p.id).len()).sum();
                assert_eq!(flow["records"].as_u64(), Some(issues as u64));
            }
            _ => assert!(flow["error"].as_str().unwrap().contains("cannot connect to PostgreSQL"), "{flow}"),
        }
    }
}
