shared::main!(http, projects::Function);
