//! `#[lattice_test]`: the attribute of every end-to-end test.
//!
//! ```ignore
//! #[lattice_test]
//! async fn an_order_is_paid(lattice: Lattice) { … }
//! ```
//! is a `#[tokio::test]` that runs only with `--ignored` (plain `cargo test` has no lattice to
//! drive; `make test` starts one and passes `--ignored`), and whose arguments are made by their
//! type's `from_env()`: the clients of the lattice `make test` started. The ignore reason says
//! which part of `make test` runs it: `#[lattice_test(ignore = "kills parts of …")]`.

use proc_macro::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{parse_macro_input, parse_quote, FnArg, ItemFn, LitStr, Token};

const DRIVES_THE_LATTICE: &str = "drives a running lattice: `make test` starts one and runs these";

/// `ignore = "reason"`, or nothing.
struct IgnoreReason(Option<LitStr>);

impl Parse for IgnoreReason {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(Self(None));
        }
        let name: syn::Ident = input.parse()?;
        if name != "ignore" {
            return Err(syn::Error::new(
                name.span(),
                "expected `ignore = \"reason\"`",
            ));
        }
        input.parse::<Token![=]>()?;
        Ok(Self(Some(input.parse()?)))
    }
}

#[proc_macro_attribute]
pub fn lattice_test(args: TokenStream, item: TokenStream) -> TokenStream {
    let IgnoreReason(reason) = parse_macro_input!(args as IgnoreReason);
    let reason =
        reason.unwrap_or_else(|| LitStr::new(DRIVES_THE_LATTICE, proc_macro2::Span::call_site()));
    let mut test = parse_macro_input!(item as ItemFn);
    let mut clients = Vec::new();
    for argument in std::mem::take(&mut test.sig.inputs) {
        match argument {
            FnArg::Typed(typed) => {
                let (name, ty) = (typed.pat, typed.ty);
                clients.push(quote! { let #name: #ty = <#ty>::from_env(); });
            }
            FnArg::Receiver(receiver) => {
                return syn::Error::new_spanned(receiver, "a lattice test takes no `self`")
                    .to_compile_error()
                    .into()
            }
        }
    }
    let body = &test.block;
    test.block = parse_quote!({ #(#clients)* #body });
    quote! {
        #[::tokio::test]
        #[ignore = #reason]
        #test
    }
    .into()
}
