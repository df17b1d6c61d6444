shared::main!(http, ai_runs::Function);
