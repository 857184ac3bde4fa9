//! OAuth2 with a GitLab application, end to end: `host auth login` against the simulator's OAuth2
//! provider (the test plays the browser), then `host run` with the stored tokens, refreshed when they
//! expire before or during a run, rotated and persisted, single-flight across partitions and processes;
//! Confidential applications and their secret; and the static token file source (`--token-file`).

mod support;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gitlab_sim::{SimConfig, Simulator, WorldShape};
use serde_json::Value;
use support::{HostRun, TOKEN, artifacts, read_jsonl_object, temp_dir};

/// The OAuth2 application the tests register.
const CLIENT_ID: &str = "4f1c0e5b7a9d2c3e8f6a1b0d9c8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e";
/// A Confidential application the tests register, and its secret.
const CONFIDENTIAL_ID: &str = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";
const CLIENT_SECRET: &str = "gloas-5f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f0e";

/// A simulator of the small world that requires a token (so unknown bearer tokens are refused), with
/// the test application registered.
fn simulator() -> Simulator {
    let sim = Simulator::start(SimConfig {
        seed: 42,
        token: Some(TOKEN.into()),
        world: WorldShape::small(),
        ..SimConfig::default()
    })
    .expect("starting the simulator");
    sim.oauth().register_application(CLIENT_ID, "http://127.0.0.1/callback", &["api", "read_api", "read_user"]);
    sim.oauth().register_confidential_application(
        CONFIDENTIAL_ID,
        CLIENT_SECRET,
        "http://127.0.0.1/callback",
        &["read_api"],
    );
    sim
}

/// A `host` command with a clean credential environment and its configuration under `home`.
fn host_command(home: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(&artifacts().host);
    command
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("HOST_LOG", "host=debug")
        .env_remove("GITLAB_TOKEN")
        .env_remove("GITLAB_OAUTH_TOKEN")
        .env_remove("GITLAB_OAUTH_CLIENT_ID")
        .env_remove("GITLAB_OAUTH_TOKEN_FILE")
        .env_remove("GITLAB_OAUTH_CLIENT_SECRET")
        .env_remove("HOST_PLUGIN");
    command
}

fn finish(child: Child) -> HostRun {
    child.wait_with_output().expect("waiting for host").into()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into()
}

/// What the browser saw during a login.
struct Login {
    run: HostRun,
    authorize_url: String,
    /// The authorization code the simulator redirected the browser with.
    code: Option<String>,
}

/// `host auth login ... extra`, with the test as the browser: open the printed authorize URL, follow
/// the simulator's redirect to the host's loopback callback.
fn login(sim: &Simulator, home: &Path, extra: &[&str]) -> Login {
    login_to(sim, home, CLIENT_ID, extra, &[])
}

/// [`login`] with the application `client_id`, and `env` set for the host.
fn login_to(sim: &Simulator, home: &Path, client_id: &str, extra: &[&str], env: &[(&str, &str)]) -> Login {
    let base = sim.base_url();
    let mut args = vec!["auth", "login", "--base-url", &base, "--client-id", client_id, "--timeout-secs", "60"];
    args.extend_from_slice(extra);
    let mut command = host_command(home, &args);
    command.envs(env.iter().copied());
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let authorize_url = loop {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let run = finish(child);
            panic!("host auth login printed no authorize URL:\n{printed}{}", run.output());
        }
        printed.push_str(&line);
        if let Some(url) = line.split_whitespace().find(|w| w.contains("/oauth/authorize?")) {
            break url.to_owned();
        }
    };
    let agent = agent();
    let authorized = agent.get(&authorize_url).call().expect("GET the authorize URL");
    assert_eq!(authorized.status(), 302, "the simulator approves at once");
    let location = authorized.headers()["location"].to_str().unwrap().to_owned();
    let code = query_param(&location, "code");
    let mut callback = agent.get(&location).call().expect("following the redirect to the host");
    let page = callback.body_mut().read_to_string().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut run = finish(child);
    run.stdout = format!("{printed}{rest}");
    run.stderr.push_str(&page);
    Login { run, authorize_url, code }
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The stored token set.
fn tokens(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Log in with the tokens going to `home/tokens.json`; the path.
fn logged_in(sim: &Simulator, home: &Path) -> PathBuf {
    let path = home.join("tokens.json");
    let login = login(sim, home, &["--token-file", path.to_str().unwrap()]);
    assert!(login.run.success, "{}", login.run.output());
    path
}

/// `host run` of `objects` under `scope` into `home/out-LABEL`, with the OAuth2 token file.
fn run_with_tokens(sim: &Simulator, home: &Path, token_file: &Path, label: &str, rest: &[&str]) -> (HostRun, PathBuf) {
    run_at(&sim.base_url(), home, token_file, label, rest)
}

/// [`run_with_tokens`] for the GitLab at `base`.
fn run_at(base: &str, home: &Path, token_file: &Path, label: &str, rest: &[&str]) -> (HostRun, PathBuf) {
    let out = home.join(format!("out-{label}"));
    let dest = format!("jsonl:{}", out.display());
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let mut args =
        vec!["run", "--plugin", &plugin, "--base-url", base, "--oauth-token-file", token_file.to_str().unwrap()];
    args.extend_from_slice(&["--dest", &dest]);
    args.extend_from_slice(rest);
    let child = host_command(home, &args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    (finish(child), out)
}

/// Every secret GitLab issued so far, as the token file and the recorded requests show them.
fn assert_no_secret_in(output: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(!output.contains(secret.as_str()), "a secret leaked into the output:\n{output}");
    }
}

fn secrets_of(tokens: &Value) -> Vec<String> {
    ["access_token", "refresh_token"].iter().map(|k| tokens[k].as_str().unwrap().to_owned()).collect()
}

/// Requests to the API (not to /oauth), and how many of them were refused with 401.
fn api_requests(sim: &Simulator) -> (usize, usize) {
    let api: Vec<_> = sim.requests().into_iter().filter(|r| r.path.starts_with("/api/v4/")).collect();
    let refused = api.iter().filter(|r| r.status == 401).count();
    (api.len(), refused)
}

fn token_requests(sim: &Simulator) -> usize {
    sim.requests().iter().filter(|r| r.method == "POST" && r.path == "/oauth/token").count()
}

/// The number of issues of a project.
fn issues_of(sim: &Simulator, project: &str) -> usize {
    sim.world().issues(sim.world().project_by_ref(project).unwrap().id).len()
}

/// The number of issues of the `demo` projects.
fn demo_issue_count(sim: &Simulator) -> usize {
    ["demo/website", "demo/api", "demo/mobile-app"].iter().map(|p| issues_of(sim, p)).sum()
}

fn issue_count(out: &Path) -> usize {
    read_jsonl_object(out, "issue").len()
}

#[test]
fn login_stores_owner_only_tokens_in_the_default_place_and_prints_no_secret() {
    let sim = simulator();
    let home = temp_dir();
    let login = login(&sim, home.path(), &["--scopes", "read_api,read_user"]);
    assert!(login.run.success, "{}", login.run.output());
    assert!(login.run.stderr.contains("Authorized. You can close this tab"), "{}", login.run.stderr);

    // PKCE with S256, a state, the asked scopes, the loopback redirect URI; never the verifier.
    let url = &login.authorize_url;
    assert!(url.starts_with(&format!("{}/oauth/authorize?", sim.base_url())), "{url}");
    assert_eq!(query_param(url, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(query_param(url, "code_challenge").unwrap().len(), 43);
    assert_eq!(query_param(url, "scope").as_deref(), Some("read_api read_user"));
    assert!(query_param(url, "state").is_some_and(|s| s.len() >= 32));
    assert!(query_param(url, "redirect_uri").unwrap().starts_with("http://127.0.0.1:"));
    assert!(!url.contains("code_verifier"));

    // $XDG_CONFIG_HOME/gitlab-host/, created 0700; the file 0600, named for the instance.
    let dir = home.path().join("config/gitlab-host");
    assert_eq!(mode(&dir), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    let token_file = files.iter().find(|p| p.extension().is_some_and(|e| e == "json")).expect("a token file");
    assert!(token_file.file_name().unwrap().to_str().unwrap().starts_with("oauth-127.0.0.1-"), "{files:?}");
    assert_eq!(mode(token_file), 0o600);
    assert!(login.run.stdout.contains(&format!("Tokens saved to {}", token_file.display())), "{}", login.run.stdout);

    let stored = tokens(token_file);
    assert_eq!(stored["client_id"], CLIENT_ID);
    assert_eq!(stored["base_url"], sim.base_url());
    assert_eq!(stored["token_type"], "Bearer");
    assert_eq!(stored["scopes"], serde_json::json!(["read_api", "read_user"]));
    assert_eq!(stored["expires_in"], 7200);
    assert!(stored["created_at"].is_i64() && stored["expires_at"].is_i64());
    let mut secrets = secrets_of(&stored);
    secrets.push(login.code.expect("the simulator sent a code"));
    assert_no_secret_in(&login.run.output(), &secrets);
    assert_eq!(token_requests(&sim), 1);

    // The default file is found from the client id alone.
    let out = home.path().join("out");
    let (base, dest) = (sim.base_url(), format!("jsonl:{}", out.display()));
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let args = ["run", "--plugin", &plugin, "--base-url", &base, "--oauth-client-id", CLIENT_ID, "--object", "project"];
    let run = finish(
        host_command(home.path(), &args)
            .args(["--group", "demo", "--dest", &dest])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(run.success, "{}", run.output());
    assert_eq!(read_jsonl_object(&out, "project").len(), 3);
}

#[test]
fn a_run_with_the_oauth_tokens_reads_everything_and_sends_only_the_bearer_token() {
    let sim = simulator();
    let home = temp_dir();
    let token_file = logged_in(&sim, home.path());
    let stored = tokens(&token_file);
    let out = home.path().join("out");
    let (base, dest) = (sim.base_url(), format!("jsonl:{}", out.display()));
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let args = ["run", "--plugin", &plugin, "--base-url", &base, "--oauth-token-file", token_file.to_str().unwrap()];
    let run = finish(
        host_command(home.path(), &args)
            .args(["--object", "issue", "--group", "demo", "--dest", &dest])
            .env("HOST_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(run.success, "{}", run.output());
    assert_eq!(issue_count(&out), demo_issue_count(&sim));
    let bearer = format!("Bearer {}", stored["access_token"].as_str().unwrap());
    for request in sim.requests().iter().filter(|r| r.path.starts_with("/api/v4/")) {
        assert_eq!(request.header("authorization"), Some(bearer.as_str()), "{}", request.path);
        assert_eq!(request.header("private-token"), None);
    }
    // Traced at the most verbose level, and still no token.
    assert!(run.stderr.contains("TRACE"), "HOST_LOG=trace is in effect");
    assert_no_secret_in(&run.output(), &secrets_of(&stored));
    assert_eq!(token_requests(&sim), 1, "a fresh token needs no refresh");
}

#[test]
fn an_access_token_that_expired_before_the_run_is_refreshed_before_the_first_request() {
    let sim = simulator();
    let home = temp_dir();
    sim.oauth().set_access_token_lifetime(Duration::from_secs(1));
    let token_file = logged_in(&sim, home.path());
    let before = tokens(&token_file);
    std::thread::sleep(Duration::from_millis(1500));
    sim.oauth().set_access_token_lifetime(Duration::from_secs(3600));
    let (run, out) =
        run_with_tokens(&sim, home.path(), &token_file, "r", &["--object", "issue", "--project", "demo/api"]);
    assert!(run.success, "{}", run.output());
    assert_eq!(issue_count(&out), issues_of(&sim, "demo/api"));
    assert_eq!(sim.oauth().refreshes(), 1);
    assert_eq!(api_requests(&sim).1, 0, "the expired token was never sent");
    let after = tokens(&token_file);
    assert_eq!(after["expires_in"], 3600);
    assert_ne!(after["access_token"], before["access_token"]);
    assert_eq!(mode(&token_file), 0o600);
    let mut secrets = secrets_of(&before);
    secrets.extend(secrets_of(&after));
    assert_no_secret_in(&run.output(), &secrets);
}

#[test]
fn a_token_expiring_mid_run_is_refreshed_once_across_concurrent_partitions() {
    let sim = simulator();
    let home = temp_dir();
    let read = ["--object", "issue", "--group", "demo", "--page-size", "20", "--concurrency", "3"];

    // How many API requests the read takes (with a private token: nothing expires).
    let out = home.path().join("measure");
    let (base, dest) = (sim.base_url(), format!("jsonl:{}", out.display()));
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let measure = finish(
        host_command(home.path(), &["run", "--plugin", &plugin, "--base-url", &base, "--dest", &dest])
            .args(read)
            .env("GITLAB_TOKEN", TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(measure.success, "{}", measure.output());
    assert_eq!(issue_count(&out), demo_issue_count(&sim));
    let (requests, refused) = api_requests(&sim);
    assert_eq!(refused, 0);
    assert!(requests >= 12, "{requests} requests are too few to expire a token half-way");

    // Now the access token dies after a little more than half of them, with three partitions in flight.
    let token_file = logged_in(&sim, home.path());
    let uses = requests / 2 + 1;
    sim.oauth().set_access_token_uses(Some(uses as u64));
    let before = tokens(&token_file);
    let (run, out) = run_with_tokens(&sim, home.path(), &token_file, "expiring", &read);
    assert!(run.success, "{}", run.output());
    assert_eq!(issue_count(&out), demo_issue_count(&sim), "exact counts despite the expiry");
    assert_eq!(sim.oauth().refreshes(), 1, "one refresh for all partitions");
    assert_eq!(token_requests(&sim), 2, "the login and one refresh");
    let (all, refused) = api_requests(&sim);
    assert!(refused >= 1, "the token did expire mid-run");
    // Every refused request was sent again, and nothing else was added.
    assert_eq!(all - requests - refused, requests);
    let after = tokens(&token_file);
    let mut secrets = secrets_of(&before);
    secrets.extend(secrets_of(&after));
    assert_no_secret_in(&run.output(), &secrets);
}

#[test]
fn the_rotated_refresh_token_is_persisted_and_the_old_one_is_refused() {
    let sim = simulator();
    let home = temp_dir();
    let token_file = logged_in(&sim, home.path());
    let first = tokens(&token_file);
    sim.oauth().set_access_token_uses(Some(2));
    let read = ["--object", "issue", "--project", "demo/api", "--page-size", "20"];
    let (run, out) = run_with_tokens(&sim, home.path(), &token_file, "one", &read);
    assert!(run.success, "{}", run.output());
    let expected = issues_of(&sim, "demo/api");
    assert_eq!(issue_count(&out), expected);
    let refreshes = sim.oauth().refreshes();
    assert!(refreshes >= 1);
    let second = tokens(&token_file);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(mode(&token_file), 0o600);

    // GitLab no longer accepts the login's refresh token...
    let mut answer = agent()
        .post(format!("{}/oauth/token", sim.base_url()))
        .send_form([
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", first["refresh_token"].as_str().unwrap()),
        ])
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: Value = serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body["error"], "invalid_grant");

    // ...but the one the run stored works: a second run refreshes from it and completes.
    let (run, out) = run_with_tokens(&sim, home.path(), &token_file, "two", &read);
    assert!(run.success, "{}", run.output());
    assert_eq!(issue_count(&out), expected);
    assert!(sim.oauth().refreshes() > refreshes);
    assert_ne!(tokens(&token_file)["refresh_token"], second["refresh_token"]);
}

#[test]
fn two_processes_sharing_a_token_file_refresh_without_spending_each_others_tokens() {
    let sim = simulator();
    let home = temp_dir();
    let token_file = logged_in(&sim, home.path());
    // Each token serves 15 requests of the two runs' ~50: both runs refresh, and race to.
    sim.oauth().set_access_token_uses(Some(15));
    let read = ["--object", "issue", "--group", "demo", "--page-size", "20"];
    let runs: Vec<(HostRun, PathBuf)> = std::thread::scope(|scope| {
        let handles: Vec<_> = ["a", "b"]
            .iter()
            .map(|label| {
                let (base, home, token_file) = (sim.base_url(), home.path(), &token_file);
                scope.spawn(move || run_at(&base, home, token_file, label, &read))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (run, out) in &runs {
        assert!(run.success, "{}", run.output());
        assert_eq!(issue_count(out), demo_issue_count(&sim));
    }
    // Every refresh GitLab granted was of the then-current refresh token: none was refused.
    let refused_refreshes = token_requests(&sim) - 1 - sim.oauth().refreshes() as usize;
    assert_eq!(refused_refreshes, 0);
}

#[test]
fn a_refresh_waits_for_another_process_holding_the_lock_and_adopts_the_tokens_it_stored() {
    let sim = simulator();
    let home = temp_dir();
    sim.oauth().set_access_token_lifetime(Duration::from_secs(1));
    let token_file = logged_in(&sim, home.path());
    std::thread::sleep(Duration::from_millis(1500));
    sim.oauth().set_access_token_lifetime(Duration::from_secs(3600));

    // Another process (the test) holds the token file's lock when the host wants to refresh.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.path().join("tokens.json.lock"))
        .unwrap();
    lock.lock().unwrap();
    let out = home.path().join("out");
    let (base, dest) = (sim.base_url(), format!("jsonl:{}", out.display()));
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let mut child = host_command(
        home.path(),
        &["run", "--plugin", &plugin, "--base-url", &base, "--oauth-token-file", token_file.to_str().unwrap()],
    )
    .args(["--object", "issue", "--project", "demo/api", "--dest", &dest])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut logged = String::new();
    while !logged.contains("waiting for the token file's lock") {
        assert!(stderr.read_line(&mut logged).unwrap() > 0, "the host never waited for the lock:\n{logged}");
    }

    // That process refreshes and stores the new pair, then lets go.
    let mut stored = tokens(&token_file);
    let mut answer = agent()
        .post(format!("{}/oauth/token", sim.base_url()))
        .send_form([
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", stored["refresh_token"].as_str().unwrap()),
        ])
        .unwrap();
    let fresh: Value = serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for key in ["access_token", "refresh_token", "expires_in", "created_at"] {
        stored[key] = fresh[key].clone();
    }
    stored["expires_at"] = (now + 3600).into();
    let temporary = home.path().join("tokens.json.new");
    std::fs::write(&temporary, serde_json::to_vec(&stored).unwrap()).unwrap();
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&temporary, &token_file).unwrap();
    lock.unlock().unwrap();

    stderr.read_to_string(&mut logged).unwrap();
    let mut run = finish(child);
    run.stderr = logged;
    assert!(run.success, "{}", run.output());
    assert_eq!(issue_count(&out), issues_of(&sim, "demo/api"));
    assert_eq!(token_requests(&sim), 2, "the login and the other process's refresh; the host adopted its tokens");
    assert_eq!(api_requests(&sim).1, 0);
    let bearer = format!("Bearer {}", fresh["access_token"].as_str().unwrap());
    assert!(
        sim.requests()
            .iter()
            .filter(|r| r.path.starts_with("/api/v4/"))
            .all(|r| r.header("authorization") == Some(&bearer))
    );
}

#[test]
fn a_refresh_token_gitlab_refuses_ends_the_run_with_a_login_again_message() {
    let sim = simulator();
    let home = temp_dir();
    let token_file = logged_in(&sim, home.path());
    let stored = tokens(&token_file);
    // Someone else spends the refresh token: GitLab revokes the pair the file holds.
    let answer = agent()
        .post(format!("{}/oauth/token", sim.base_url()))
        .send_form([
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", stored["refresh_token"].as_str().unwrap()),
        ])
        .unwrap();
    assert_eq!(answer.status(), 200);
    let (run, _) =
        run_with_tokens(&sim, home.path(), &token_file, "x", &["--object", "issue", "--project", "demo/api"]);
    assert!(!run.success);
    let error = run.error_line();
    assert!(error.contains("invalid_grant"), "{error}");
    assert!(
        error.contains(&format!("run `host auth login --base-url {} --client-id {CLIENT_ID}` again", sim.base_url())),
        "{error}"
    );
    assert_no_secret_in(&run.output(), &secrets_of(&stored));
    assert_eq!(api_requests(&sim), (1, 1), "one refused request, not sent again");
    assert_eq!(token_requests(&sim), 3, "login, the other client's refresh, one refused refresh");
    assert_eq!(tokens(&token_file)["refresh_token"], stored["refresh_token"], "the file is left as it was");
}

#[test]
fn a_user_who_refuses_the_application_ends_the_login_clearly_and_nothing_is_stored() {
    let sim = simulator();
    let home = temp_dir();
    sim.oauth().set_user_approves(false);
    let token_file = home.path().join("tokens.json");
    let login = login(&sim, home.path(), &["--token-file", token_file.to_str().unwrap()]);
    assert!(!login.run.success);
    assert!(
        login.run.stderr.contains("error: GitLab did not authorize the application: access_denied"),
        "{}",
        login.run.output()
    );
    assert!(login.code.is_none());
    assert!(!token_file.exists());
    assert_eq!(token_requests(&sim), 0);
}

/// Mark the access token of the token file at `path` as expired a minute ago, as a run would find it
/// after its lifetime.
fn expire(path: &Path) {
    let mut stored = tokens(path);
    stored["expires_at"] =
        (stored["expires_at"].as_i64().unwrap() - stored["expires_in"].as_i64().unwrap() - 60).into();
    std::fs::write(path, serde_json::to_vec(&stored).unwrap()).unwrap();
}

/// Write `text` to `home/NAME` with `mode`; the path.
fn private_file(home: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = home.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn a_confidential_application_logs_in_and_refreshes_with_its_secret_which_never_shows() {
    let sim = simulator();
    let home = temp_dir();
    let secret_file = private_file(home.path(), "client-secret", &format!("{CLIENT_SECRET}\n"), 0o600);
    let token_file = home.path().join("tokens.json");
    let token_arg = token_file.to_str().unwrap();
    let extra = ["--token-file", token_arg, "--client-secret-file", secret_file.to_str().unwrap()];
    let login = login_to(&sim, home.path(), CONFIDENTIAL_ID, &extra, &[]);
    assert!(login.run.success, "{}", login.run.output());
    assert!(login.run.stdout.contains("Tokens and the application's secret saved to"), "{}", login.run.stdout);
    assert_eq!(mode(&token_file), 0o600);
    let first = tokens(&token_file);
    assert_eq!(first["client_id"], CONFIDENTIAL_ID);
    assert_eq!(first["client_secret"], CLIENT_SECRET, "kept for the refreshes");

    // Two runs, each finding the access token expired: each refresh carries the secret (the simulator
    // refuses one without it), and the rotated file keeps it for the next.
    let mut secrets = vec![CLIENT_SECRET.to_owned(), login.code.expect("a code")];
    secrets.extend(secrets_of(&first));
    for label in ["first", "second"] {
        expire(&token_file);
        let (run, out) =
            run_with_tokens(&sim, home.path(), &token_file, label, &["--object", "issue", "--project", "demo/api"]);
        assert!(run.success, "{}", run.output());
        assert_eq!(issue_count(&out), issues_of(&sim, "demo/api"));
        let stored = tokens(&token_file);
        assert_eq!(stored["client_secret"], CLIENT_SECRET);
        secrets.extend(secrets_of(&stored));
        assert_no_secret_in(&run.output(), &secrets);
    }
    assert_eq!(sim.oauth().refreshes(), 2);
    assert_eq!(api_requests(&sim).1, 0, "no expired token was sent");
    assert_no_secret_in(&login.run.output(), &secrets);

    // The secret may come from the environment instead.
    let from_env = home.path().join("tokens-env.json");
    let extra = ["--token-file", from_env.to_str().unwrap()];
    let login = login_to(&sim, home.path(), CONFIDENTIAL_ID, &extra, &[("GITLAB_OAUTH_CLIENT_SECRET", CLIENT_SECRET)]);
    assert!(login.run.success, "{}", login.run.output());
    assert_eq!(tokens(&from_env)["client_secret"], CLIENT_SECRET);
}

#[test]
fn a_confidential_application_without_its_secret_or_with_a_readable_one_is_refused_with_what_to_do() {
    let sim = simulator();
    let home = temp_dir();
    let token_file = home.path().join("tokens.json");
    let token_arg = token_file.to_str().unwrap();

    // No secret: GitLab refuses the exchange, and the error says how to give it.
    let login = login_to(&sim, home.path(), CONFIDENTIAL_ID, &["--token-file", token_arg], &[]);
    assert!(!login.run.success);
    let error = login.run.error_line();
    assert!(error.contains("GitLab answered 401 invalid_client"), "{error}");
    assert!(error.contains("--client-secret-file PATH or GITLAB_OAUTH_CLIENT_SECRET"), "{error}");
    assert!(!token_file.exists());

    // A wrong one: the same, and the wrong secret is not shown either.
    let wrong = "gloas-not-the-secret-0000000000000000";
    let login = login_to(
        &sim,
        home.path(),
        CONFIDENTIAL_ID,
        &["--token-file", token_arg],
        &[("GITLAB_OAUTH_CLIENT_SECRET", wrong)],
    );
    assert!(!login.run.success);
    assert!(login.run.stderr.contains("invalid_client"), "{}", login.run.output());
    assert_no_secret_in(&login.run.output(), &[wrong.to_owned()]);
    assert!(!token_file.exists());

    // A secret file others may read is refused before the browser is even asked.
    let readable = private_file(home.path(), "client-secret", CLIENT_SECRET, 0o644);
    let before = sim.request_count();
    let args = ["auth", "login", "--base-url", &sim.base_url(), "--client-id", CONFIDENTIAL_ID];
    let run = finish(
        host_command(home.path(), &args)
            .args(["--client-secret-file", readable.to_str().unwrap(), "--token-file", token_arg])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert!(!run.success);
    assert!(run.stderr.contains(&format!("chmod 600 {}", readable.display())), "{}", run.output());
    assert!(!run.stdout.contains("/oauth/authorize"), "{}", run.stdout);
    assert_eq!(sim.request_count(), before);
    assert_no_secret_in(&run.output(), &[CLIENT_SECRET.to_owned()]);
}

#[test]
fn a_token_file_others_can_read_is_refused_before_any_request() {
    let sim = simulator();
    let home = temp_dir();
    let token_file = logged_in(&sim, home.path());
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let before = sim.request_count();
    let (run, _) =
        run_with_tokens(&sim, home.path(), &token_file, "x", &["--object", "issue", "--project", "demo/api"]);
    assert!(!run.success);
    assert!(run.stderr.contains(&format!("chmod 600 {}", token_file.display())), "{}", run.stderr);
    assert_eq!(sim.request_count(), before);
}

#[test]
fn a_private_token_file_is_sent_as_private_token_and_a_readable_one_is_refused() {
    let sim = simulator();
    let home = temp_dir();
    let token_file = private_file(home.path(), "gitlab-token", &format!("{TOKEN}\n"), 0o640);
    let out = home.path().join("out");
    let (base, dest) = (sim.base_url(), format!("jsonl:{}", out.display()));
    let plugin = artifacts().gitlab_wasm.to_str().unwrap().to_owned();
    let args = ["run", "--plugin", &plugin, "--base-url", &base, "--token-file", token_file.to_str().unwrap()];
    let run = |home: &Path| {
        finish(
            host_command(home, &args)
                .args(["--object", "project", "--group", "demo", "--dest", &dest])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };

    let refused = run(home.path());
    assert!(!refused.success);
    let error = refused.error_line();
    assert!(error.contains(&format!("chmod 600 {}", token_file.display())), "{error}");
    assert_eq!(sim.request_count(), 0);

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let done = run(home.path());
    assert!(done.success, "{}", done.output());
    assert_eq!(read_jsonl_object(&out, "project").len(), 3);
    assert!(sim.requests().iter().all(|r| r.header("private-token") == Some(TOKEN)));
    assert!(!done.output().contains(TOKEN) && !refused.output().contains(TOKEN));
}
