//! `template.yaml` as deployed: least-privilege secrets (no function reachable from the
//! internet can read a worker's database login; each function reads exactly the secrets it is
//! told to read) and one identity provider for the gateway and the functions.

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;

fn template() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).expect("template.yaml")).expect("template.yaml is YAML")
}

fn resources(template: &Value) -> BTreeMap<String, Value> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

/// The logical id a `!Ref X` names.
fn reference(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_owned),
        _ => None,
    }
}

fn references(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items.iter().flat_map(references).collect(),
        Value::Tagged(tagged) if tagged.tag == "Join" => references(&tagged.value[1]),
        other => reference(other).into_iter().collect(),
    }
}

/// Each secret's configuration keys: those the stack creates, from the JSON object each is
/// created with; those the deployer creates beforehand (a `...SecretArn` parameter), from the
/// `KEY` names its description gives.
fn secret_keys(resources: &BTreeMap<String, Value>) -> BTreeMap<String, BTreeSet<String>> {
    let created = resources.iter().filter(|(_, r)| r["Type"] == "AWS::SecretsManager::Secret").map(|(id, r)| {
        let json: serde_json::Value = serde_json::from_str(
            r["Properties"]["SecretString"].as_str().unwrap_or_else(|| panic!("{id} declares its keys")),
        )
        .unwrap();
        (id.clone(), json.as_object().unwrap().keys().cloned().collect())
    });
    let template = template();
    let given = template["Parameters"].as_mapping().unwrap().iter().filter_map(|(name, parameter)| {
        let name = name.as_str()?.to_owned();
        name.ends_with("SecretArn").then(|| {
            let description = parameter["Description"].as_str().unwrap_or_default();
            let keys: BTreeSet<String> = description
                .split('`')
                .skip(1)
                .step_by(2)
                .filter(|word| word.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
                .map(str::to_owned)
                .collect();
            assert!(!keys.is_empty(), "{name}'s description names the keys the secret must hold");
            (name, keys)
        })
    });
    created.chain(given).collect()
}

struct Function {
    /// Reachable from the internet: an HTTP API route or a Function URL.
    public: bool,
    /// Secrets its IAM policy lets it read.
    readable: BTreeSet<String>,
    /// Secrets its configuration tells it to read (`APP_SECRET_IDS`).
    configured: BTreeSet<String>,
}

fn functions(resources: &BTreeMap<String, Value>) -> BTreeMap<String, Function> {
    // A WebSocket API's integration makes its function as reachable as an HTTP route does.
    let integrated: Vec<String> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::ApiGatewayV2::Integration")
        .map(|r| serde_norway::to_string(&r["Properties"]["IntegrationUri"]).unwrap())
        .collect();
    resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(id, r)| {
            let properties = &r["Properties"];
            let public = integrated.iter().any(|uri| uri.contains(&format!("{{{id}.Arn}}")))
                || properties.get("FunctionUrlConfig").is_some()
                || properties["Events"]
                    .as_mapping()
                    .is_some_and(|events| events.values().any(|e| e["Type"] == "HttpApi" || e["Type"] == "Api"));
            let mut readable = BTreeSet::new();
            for policy in properties["Policies"].as_sequence().into_iter().flatten() {
                for statement in policy["Statement"].as_sequence().into_iter().flatten() {
                    let actions: Vec<&str> = match &statement["Action"] {
                        Value::Sequence(actions) => actions.iter().filter_map(Value::as_str).collect(),
                        action => action.as_str().into_iter().collect(),
                    };
                    if actions.iter().any(|a| *a == "secretsmanager:GetSecretValue" || *a == "secretsmanager:*") {
                        let resource = &statement["Resource"];
                        assert_ne!(resource.as_str(), Some("*"), "{id} may read every secret");
                        readable.extend(references(resource));
                    }
                }
            }
            let configured =
                properties["Environment"]["Variables"].get("APP_SECRET_IDS").map(references).unwrap_or_default();
            (id.clone(), Function { public, readable, configured: configured.into_iter().collect() })
        })
        .collect()
}

#[test]
fn no_public_function_can_read_a_secret_holding_a_workers_database_login() {
    let resources = resources(&template());
    let keys = secret_keys(&resources);
    let functions = functions(&resources);
    assert!(functions.values().filter(|f| f.public).count() >= 6, "expected the HTTP functions and the webhook");
    for (id, function) in &functions {
        for secret in &function.readable {
            let held = keys.get(secret).unwrap_or_else(|| panic!("{id} reads {secret}, which is not a secret here"));
            if function.public {
                assert!(
                    !held.contains("SERVICE_DATABASE_URL"),
                    "{id} is reachable from the internet and can read {secret}, which holds SERVICE_DATABASE_URL"
                );
            }
            // The operators' login reads every tenant: the admin function (which admits
            // operators only) and nothing else holds it.
            assert!(
                !held.contains("ADMIN_DATABASE_URL") || id == "AdminFunction",
                "{id} can read {secret}, which holds ADMIN_DATABASE_URL"
            );
        }
    }
    // The webhook holds nothing but its signing secrets.
    let webhook: BTreeSet<&String> =
        functions["StripeWebhookFunction"].readable.iter().flat_map(|s| keys[s].iter()).collect();
    assert_eq!(webhook.into_iter().cloned().collect::<Vec<_>>(), ["STRIPE_WEBHOOK_SECRETS"]);
}

#[test]
fn each_function_reads_exactly_the_secrets_it_is_configured_with() {
    let resources = resources(&template());
    let keys = secret_keys(&resources);
    for (id, function) in functions(&resources) {
        // The gateway's authorizer verifies tokens with public keys only.
        assert!(!function.configured.is_empty() || id == "AuthorizerFunction", "{id} reads no secret");
        assert_eq!(function.readable, function.configured, "{id}: IAM access and APP_SECRET_IDS differ");
        // Each setting in exactly one of its secrets (the loader refuses duplicates).
        let mut seen = BTreeSet::new();
        for secret in &function.configured {
            for key in &keys[secret] {
                assert!(seen.insert(key), "{id}: {key} is in two of its secrets");
            }
        }
    }
}

#[test]
fn the_gateway_and_the_functions_accept_the_same_issuer_and_audience() {
    let template = template();
    let auth = &template["Resources"]["HttpApi"]["Properties"]["Auth"];
    let authorizer = &auth["Authorizers"][auth["DefaultAuthorizer"].as_str().unwrap()];
    // The gateway's authorizer is our own function: it verifies tokens with the same settings
    // the functions use (the Globals), and lets API keys through to be checked by them.
    match &authorizer["FunctionArn"] {
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => {
            assert_eq!(tagged.value.as_str(), Some("AuthorizerFunction.Arn"))
        }
        other => panic!("the default authorizer is not the authorizer function: {other:?}"),
    }
    assert_eq!(authorizer["Identity"]["Headers"][0], "Authorization");
    assert!(authorizer["Identity"]["ReauthorizeEvery"].as_u64().is_some_and(|ttl| ttl > 0), "answers are cached");
    assert_eq!(authorizer["EnableSimpleResponses"], true);
    let function = &template["Resources"]["AuthorizerFunction"]["Properties"];
    let own = &function["Environment"]["Variables"];
    assert!(
        own.as_mapping().is_none_or(|vars| !vars.keys().any(|k| k.as_str().is_some_and(|k| k.starts_with("AUTH_"))))
    );
    assert!(function.get("Policies").is_none(), "the authorizer reads no secret and no database");
    let variables = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert!(variables.get("AUTH_OIDC_ISSUERS").is_some() && variables.get("AUTH_AUDIENCES").is_some());
    // And no secret can widen it behind the gateway's back.
    for (id, held) in secret_keys(&resources(&template)) {
        assert!(!held.iter().any(|k| k.starts_with("AUTH_")), "{id} would override the issuer the gateway checks");
    }
}

/// The first deploy as docs/operations.md tells it: every secret the functions read is either
/// created before the deploy (a parameter) or created by the stack, given in the outputs and
/// filled in by one of the documented steps.
#[test]
fn every_secret_is_in_the_outputs_and_the_deploy_steps() {
    let template = template();
    let resources = resources(&template);
    let outputs = template["Outputs"].as_mapping().unwrap();
    let steps = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/operations.md"))
        .unwrap();
    let deploy = &steps[steps.find("## Deployment").expect("docs/operations.md: ## Deployment")..];
    let deploy = &deploy[..deploy[3..].find("\n## ").map_or(deploy.len(), |end| end + 3)];
    let keys = secret_keys(&resources);
    for (secret, held) in &keys {
        let named = if resources.contains_key(secret) {
            let output = format!("{secret}Arn");
            assert!(
                outputs.iter().any(
                    |(name, o)| name.as_str() == Some(&output) && reference(&o["Value"]).as_deref() == Some(secret)
                ),
                "no output {output} gives {secret}'s ARN"
            );
            output
        } else {
            secret.clone()
        };
        assert!(deploy.contains(&named), "the deploy steps do not name {named}");
        for key in held {
            assert!(deploy.contains(key.as_str()), "the deploy steps do not say what to put in {key} ({secret})");
        }
    }
    assert!(keys.len() >= 13, "{keys:?}");
}

/// The HTTP API's CORS is the contract `shared::http::cors` states (the local stack's too), for
/// the origins the deployer allows, with credentials and so never a wildcard.
#[test]
fn the_api_allows_browsers_what_the_local_stack_allows() {
    let template = template();
    let api = &resources(&template)["HttpApi"]["Properties"]["CorsConfiguration"];
    let Value::Tagged(condition) = api else { panic!("CorsConfiguration is conditional on AllowedOrigins: {api:?}") };
    assert_eq!(condition.tag, "If");
    assert_eq!(condition.value[0].as_str(), Some("HasAllowedOrigins"));
    let cors = &condition.value[1];
    let list = |name: &str| -> Vec<String> {
        cors[name].as_sequence().unwrap().iter().map(|v| v.as_str().unwrap().to_ascii_lowercase()).collect()
    };
    let lower = |items: &[&str]| -> Vec<String> { items.iter().map(|s| s.to_ascii_lowercase()).collect() };
    assert_eq!(list("AllowMethods"), lower(&shared::http::cors::ALLOWED_METHODS));
    assert_eq!(list("AllowHeaders"), lower(&shared::http::cors::ALLOWED_HEADERS));
    assert_eq!(list("ExposeHeaders"), lower(&shared::http::cors::EXPOSED_HEADERS));
    assert_eq!(cors["MaxAge"].as_u64(), Some(shared::http::cors::MAX_AGE_SECS));
    assert_eq!(cors["AllowCredentials"].as_bool(), Some(true));
    assert_eq!(reference(&cors["AllowOrigins"]).as_deref(), Some("AllowedOrigins"));
    let pattern = template["Parameters"]["AllowedOrigins"]["AllowedPattern"].as_str().unwrap();
    assert!(!pattern.contains('*'), "credentials allowed, so no wildcard origin: {pattern}");
}

/// Setting names read in the Rust file `path`, or the files under it (through `Settings`, a
/// lookup, or the environment).
fn settings_read_under(path: &std::path::Path, found: &mut BTreeSet<String>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            settings_read_under(&entry.unwrap().path(), found);
        }
        return;
    }
    if path.extension().is_none_or(|e| e != "rs") {
        return;
    }
    {
        let text = std::fs::read_to_string(path).unwrap();
        // Test modules read what they like.
        let text = text.split("#[cfg(test)]").next().unwrap();
        for opener in ["get(\"", "require(\"", "lookup, \"", "lookup(\"", "env::var(\""] {
            for piece in text.split(opener).skip(1) {
                let name: String =
                    piece.chars().take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit()).collect();
                if name.len() > 2 && piece[name.len()..].starts_with('"') {
                    found.insert(name);
                }
            }
        }
    }
}

/// The names read inside `impl <ty>` of the common crate's configuration.
fn settings_read_by_config_of(ty: &str) -> BTreeSet<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let config = std::fs::read_to_string(root.join("shared/src/config.rs")).unwrap();
    let start = config.find(&format!("\nimpl {ty} {{")).unwrap_or_else(|| panic!("config.rs: impl {ty}"));
    let block = &config[start..start + 1 + config[start + 1..].find("\n}\n").unwrap()];
    let scratch = std::env::temp_dir().join(format!("config-{ty}-{}.rs", std::process::id()));
    std::fs::write(&scratch, block).unwrap();
    let mut found = BTreeSet::new();
    settings_read_under(&scratch, &mut found);
    std::fs::remove_file(&scratch).unwrap();
    found
}

/// What a function reads: its own crate's settings; the common crate's telemetry and metrics;
/// the configuration it builds (a database pool, token verification, an HTTP function's whole
/// configuration); and the modules of the features it enables.
fn settings_read_by(binary: &str) -> BTreeSet<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crate_dir = root.join("functions").join(binary);
    let mut found = BTreeSet::new();
    settings_read_under(&crate_dir.join("src"), &mut found);
    for core in ["telemetry.rs", "metrics.rs"] {
        settings_read_under(&root.join("shared/src").join(core), &mut found);
    }
    let mut sources = BTreeSet::new();
    settings_read_under(&crate_dir.join("src"), &mut sources);
    let text: String = std::fs::read_dir(crate_dir.join("src"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
        .collect();
    // An API function's whole configuration comes with the application state.
    let http = text.contains("AppState") || text.contains("BillingState");
    if http {
        found.extend(settings_read_by_config_of("Config"));
    }
    if http || text.contains("AuthConfig") {
        found.extend(settings_read_by_config_of("AuthConfig"));
    }
    if http || text.contains("DatabaseConfig") || text.contains("Worker::from_settings") {
        found.extend(settings_read_by_config_of("DatabaseConfig"));
    }
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let shared_line = manifest.lines().find(|l| l.starts_with("shared")).unwrap_or_default();
    let modules: &[(&str, &[&str])] = &[
        ("\"stripe\"", &["stripe.rs", "billing.rs"]),
        // The billing worker's own settings (billing_sync/setup.rs) only where it is built.
        ("\"billing-sync\"", &["stripe.rs"]),
        ("\"ai\"", &["ai.rs"]),
        ("\"exports\"", &["exports.rs"]),
        ("\"webhooks\"", &["webhooks"]),
        ("\"realtime\"", &["realtime.rs"]),
        ("\"queue\"", &["queue.rs"]),
    ];
    if text.contains("Worker::from_settings") {
        settings_read_under(&root.join("shared/src/billing_sync/setup.rs"), &mut found);
    }
    for (feature, paths) in modules {
        if shared_line.contains(feature) {
            for path in *paths {
                settings_read_under(&root.join("shared/src").join(path), &mut found);
            }
        }
    }
    found
}

/// The variables a function's environment declares: the template's Globals and its own.
fn declared(template: &Value, function: &Value) -> BTreeSet<String> {
    let keys = |vars: &Value| -> Vec<String> {
        vars.as_mapping().map(|m| m.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let mut names: BTreeSet<String> =
        keys(&template["Globals"]["Function"]["Environment"]["Variables"]).into_iter().collect();
    names.extend(keys(&function["Properties"]["Environment"]["Variables"]));
    names
}

/// Read only outside a deployed function: development builds (HS256) and the local tools; or
/// set by Lambda itself.
const NOT_DECLARED: [&str; 6] = [
    "AUTH_HS256_SECRET",
    "AUTH_HS256_ISSUER",
    "APP_SECRET_ID",
    "METRICS_STDOUT",
    "AWS_LAMBDA_FUNCTION_NAME",
    "LOG_FORMAT",
];

/// Every variable a function reads is declared in the template (so `sam local invoke
/// --env-vars` can set it: SAM local overrides only declared variables), with its production
/// value or empty; and `env.json` sets only declared variables.
#[test]
fn the_template_declares_every_setting_a_function_reads_and_env_json_sets_only_those() {
    let template = template();
    let resources = resources(&template);
    let mut missing = Vec::new();
    let mut declared_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (id, resource) in resources.iter().filter(|(_, r)| r["Type"] == "AWS::Serverless::Function") {
        let binary = resource["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        let declared = declared(&template, resource);
        for name in settings_read_by(binary) {
            if !declared.contains(&name) && !NOT_DECLARED.contains(&name.as_str()) {
                missing.push(format!("{id} ({binary}) reads {name}"));
            }
        }
        declared_by.insert(id.clone(), declared);
    }
    assert!(missing.is_empty(), "declare these in template.yaml:\n{}", missing.join("\n"));

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let env: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("env.json")).unwrap()).unwrap();
    let globals = declared(&template, &Value::Null);
    for (scope, variables) in env.as_object().unwrap() {
        let allowed = if scope == "Parameters" {
            &globals
        } else {
            declared_by.get(scope).unwrap_or_else(|| panic!("env.json names {scope}, which is no function"))
        };
        for name in variables.as_object().unwrap().keys() {
            assert!(
                allowed.contains(name),
                "env.json sets {name} for {scope}, which the template does not declare there"
            );
        }
    }
}
