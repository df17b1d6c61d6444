shared::main!(http, workspaces::Function);
