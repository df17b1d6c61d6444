shared::main!(http, checkout::Function);
