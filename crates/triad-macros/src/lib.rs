//! The `#[triad::task]` and `#[triad::monitor]` attributes.
//!
//! It turns a free function into a *task*: a unit struct with the function's name that implements
//! `triad::Task` (typed input and output, a stable registry name) and an inherent `call` that is
//! the original function. The struct is also submitted to triad's registry, so a worker process
//! can later find the function by name alone.
//!
//! ```text
//! #[triad::task]
//! fn add(a: u64, b: u64) -> u64 { a + b }
//! // becomes, in short:
//! pub struct add;
//! impl add { pub fn call(a: u64, b: u64) -> u64 { a + b } }
//! impl triad::Task for add { type Input = (u64, u64); type Output = u64; ... }
//! ```
//!
//! A function with one argument takes that argument's type as its input; with several, a tuple
//! of them; with none, `()`. `async fn` bodies are marked async so that engines run them natively.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{format_ident, quote};
use syn::{FnArg, ItemFn, ReturnType, parse_macro_input, spanned::Spanned};

/// Registers a free function as a triad task. See the crate docs for what it expands to.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "#[triad::task] takes no arguments")
            .to_compile_error()
            .into();
    }
    let function = parse_macro_input!(item as ItemFn);
    match expand(function) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// Times every call of a function as the seed's `performance_monitor` does (§8.3): the call is
/// counted under its kind (`#[triad::monitor(kind = "io")]`), logged through `tracing`, and
/// recorded as a span when `triad::monitor::set_recorder` set one. A call that returns `Err`
/// or panics is a failure. Works on plain and `async` functions and methods alike.
#[proc_macro_attribute]
pub fn monitor(attr: TokenStream, item: TokenStream) -> TokenStream {
    let kind = match parse_kind(proc_macro2::TokenStream::from(attr)) {
        Ok(kind) => kind,
        Err(error) => return error.to_compile_error().into(),
    };
    let function = parse_macro_input!(item as ItemFn);
    expand_monitor(function, &kind).into()
}

/// `kind = "…"`, the attribute's one argument.
fn parse_kind(attr: proc_macro2::TokenStream) -> syn::Result<String> {
    let span = attr.span();
    let pair: syn::MetaNameValue = syn::parse2(attr).map_err(|_| {
        syn::Error::new(
            span,
            r#"#[triad::monitor] takes one argument: kind = "io" (or "cpu", …)"#,
        )
    })?;
    if !pair.path.is_ident("kind") {
        return Err(syn::Error::new(pair.path.span(), "the argument is `kind`"));
    }
    match &pair.value {
        syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(kind),
            ..
        }) => Ok(kind.value()),
        other => Err(syn::Error::new(
            other.span(),
            "the kind is a string: kind = \"io\"",
        )),
    }
}

fn expand_monitor(mut function: ItemFn, kind: &str) -> proc_macro2::TokenStream {
    let name = function.sig.ident.to_string();
    let block = &function.block;
    // The result's type, written out so that a body that only panics, or that uses `?` in an
    // async block, still has one; an `impl Trait` cannot be written there, and needs none.
    let annotation = match &function.sig.output {
        ReturnType::Default => quote!(: ()),
        ReturnType::Type(_, ty) if matches!(**ty, syn::Type::ImplTrait(_)) => quote!(),
        ReturnType::Type(_, ty) => quote!(: #ty),
    };
    let body = if function.sig.asyncness.is_some() {
        quote! {
            let __triad_call = ::triad::monitor::Call::start(
                #kind, ::std::concat!(::std::module_path!(), "::", #name));
            let __triad_result #annotation = async move #block.await;
            {
                #[allow(unused_imports)]
                use ::triad::monitor::{NotAResult as _, ResultFailed as _};
                __triad_call.finish((&__triad_result).failed());
            }
            __triad_result
        }
    } else {
        quote! {
            let __triad_call = ::triad::monitor::Call::start(
                #kind, ::std::concat!(::std::module_path!(), "::", #name));
            #[allow(clippy::redundant_closure_call)]
            let __triad_result #annotation = (move || #block)();
            {
                #[allow(unused_imports)]
                use ::triad::monitor::{NotAResult as _, ResultFailed as _};
                __triad_call.finish((&__triad_result).failed());
            }
            __triad_result
        }
    };
    *function.block = syn::parse_quote!({ #body });
    quote!(#function)
}

fn expand(function: ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &function.sig;
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a triad task cannot be generic: its input and output types must be known to the registry",
        ));
    }
    if let Some(receiver) = sig.receiver() {
        return Err(syn::Error::new(
            receiver.span(),
            "a triad task must be a free function, not a method",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(
            variadic.span(),
            "a triad task cannot be variadic",
        ));
    }
    if sig.constness.is_some() || sig.unsafety.is_some() || sig.abi.is_some() {
        return Err(syn::Error::new(
            sig.span(),
            "a triad task must be a plain `fn` or `async fn` (not const, unsafe or extern)",
        ));
    }

    let vis = &function.vis;
    // Doc comments describe the task (the struct); every other attribute (`#[inline]`,
    // `#[allow(...)]`, ...) belongs to the function, which is `call`.
    let (docs, attrs): (Vec<_>, Vec<_>) = function
        .attrs
        .iter()
        .partition(|attr| attr.path().is_ident("doc"));
    let name = &sig.ident;
    let name_text = name.to_string();
    let asyncness = &sig.asyncness;
    let is_async = sig.asyncness.is_some();
    let inputs = &sig.inputs;
    let block = &function.block;
    let output_type = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };

    let mut types = Vec::new();
    for arg in inputs {
        match arg {
            FnArg::Typed(pat_type) => types.push(pat_type.ty.clone()),
            FnArg::Receiver(receiver) => {
                return Err(syn::Error::new(
                    receiver.span(),
                    "a triad task must be a free function, not a method",
                ));
            }
        }
    }
    let bindings: Vec<_> = (0..types.len())
        .map(|i| format_ident!("__triad_arg{}", i, span = Span::call_site()))
        .collect();
    let (input_type, pattern) = match types.len() {
        1 => {
            let ty = &types[0];
            let binding = &bindings[0];
            (quote!(#ty), quote!(#binding))
        }
        _ => (quote!((#(#types,)*)), quote!((#(#bindings,)*))),
    };

    let body = if is_async {
        quote! {
            ::triad::Body::Async(|#pattern| ::std::boxed::Box::pin(#name::call(#(#bindings),*)))
        }
    } else {
        quote! {
            ::triad::Body::Blocking(|#pattern| #name::call(#(#bindings),*))
        }
    };
    let doc = format!(
        "The triad task `{name_text}`: call it with [`{name_text}::call`], or hand it to a triad engine."
    );

    Ok(quote! {
        #[doc = #doc]
        #(#docs)*
        #[allow(non_camel_case_types)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        #vis struct #name;

        impl #name {
            /// Calls the task's function directly, in this thread.
            #(#attrs)*
            #vis #asyncness fn call(#inputs) -> #output_type #block
        }

        impl ::triad::Task for #name {
            type Input = #input_type;
            type Output = #output_type;
            const NAME: &'static str = ::std::concat!(::std::module_path!(), "::", #name_text);

            fn body(&self) -> ::triad::Body<Self::Input, Self::Output> {
                #body
            }
        }

        ::triad::__private::inventory::submit! {
            ::triad::Registration::of::<#name>()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expanded(source: &str) -> String {
        let function: ItemFn = syn::parse_str(source).expect("a function");
        expand(function).expect("it expands").to_string()
    }

    fn refused(source: &str) -> String {
        let function: ItemFn = syn::parse_str(source).expect("a function");
        expand(function).expect_err("it is refused").to_string()
    }

    #[test]
    fn the_input_is_the_argument_a_tuple_of_them_or_unit() {
        let one = expanded("fn f(x: u64) -> u64 { x }");
        assert!(one.contains("type Input = u64"), "{one}");
        assert!(one.contains("type Output = u64"), "{one}");
        let two = expanded("fn f(a: u8, b: String) -> bool { true }");
        assert!(two.contains("type Input = (u8 , String ,)"), "{two}");
        let none = expanded("fn f() {}");
        assert!(none.contains("type Input = ()"), "{none}");
        assert!(none.contains("type Output = ()"), "{none}");
    }

    #[test]
    fn the_name_is_the_module_path_and_the_function() {
        let tokens = expanded("pub fn square(x: u64) -> u64 { x * x }");
        assert!(
            tokens.contains(r#"concat ! (:: std :: module_path ! () , "::" , "square")"#),
            "{tokens}"
        );
        assert!(tokens.contains("pub struct square"), "{tokens}");
        assert!(tokens.contains("inventory :: submit !"), "{tokens}");
    }

    #[test]
    fn async_bodies_are_marked_async_and_blocking_ones_blocking() {
        assert!(expanded("async fn f(x: u8) -> u8 { x }").contains(":: triad :: Body :: Async"));
        assert!(expanded("fn f(x: u8) -> u8 { x }").contains(":: triad :: Body :: Blocking"));
    }

    #[test]
    fn docs_go_to_the_struct_and_other_attributes_to_call() {
        let tokens = expanded("/// Squares.\n#[inline]\nfn f(x: u8) -> u8 { x }");
        let strukt = tokens.find("struct f").unwrap();
        let call = tokens.find("fn call").unwrap();
        let doc = tokens.find("Squares.").unwrap();
        let inline = tokens.find("# [inline]").unwrap();
        assert!(doc < strukt && strukt < inline && inline < call, "{tokens}");
    }

    #[test]
    fn unsupported_shapes_are_refused_with_a_reason() {
        assert!(refused("fn f<T>(x: T) -> T { x }").contains("cannot be generic"));
        assert!(refused("const fn f(x: u8) -> u8 { x }").contains("plain `fn`"));
        assert!(refused("unsafe fn f(x: u8) -> u8 { x }").contains("plain `fn`"));
        assert!(refused(r#"extern "C" fn f(x: u8) -> u8 { x }"#).contains("plain `fn`"));
    }
}
