shared::main!(http, admin::Function);
