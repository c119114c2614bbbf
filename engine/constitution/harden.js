// Seals a fresh goja realm before any script runs in it. Called once per
// pooled runtime with host checks implemented in Go; afterwards every
// intrinsic, the global object and the host API are frozen, so a call can
// leave nothing behind for the next one.
(function (host) {
  "use strict";
  const { defineProperty, getOwnPropertyDescriptor, getPrototypeOf, freeze } = Object;
  const ownKeys = Reflect.ownKeys;
  const construct = Reflect.construct;

  // eval could declare global lexical bindings that outlive a call.
  defineProperty(globalThis, "eval", {
    value: function evalIsNotAvailable() { throw new EvalError("eval is not available"); },
    writable: false, enumerable: false, configurable: false,
  });

  tameDate();
  removeBigInt();
  removeFunctionConstructors();

  // Constructors that allocate from a length they are given.
  const OriginalArrayBuffer = ArrayBuffer;
  guardConstructor("ArrayBuffer", (args) => host.checkBytes(args[0]));
  const typedArrays = ["Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array",
    "Int32Array", "Uint32Array", "Float32Array", "Float64Array"];
  for (const name of typedArrays) {
    guardConstructor(name, (args) => {
      const a = args[0];
      if (a === null || (typeof a !== "object" && typeof a !== "function")) {
        host.checkLength(a);
      } else if (!(a instanceof OriginalArrayBuffer)) {
        host.checkLength(a.length);
      }
    });
  }
  for (const name of ["Set", "Map", "WeakSet", "WeakMap"]) {
    guardConstructor(name, (args) => {
      const a = args[0];
      if (a !== null && a !== undefined) host.checkLength(a.length);
    });
  }

  // Freezing a prototype turns `child.name = x` into a TypeError when name is
  // inherited (the "override mistake"); these common ones stay overridable.
  const overridable = [[Object.prototype, ["constructor", "toString", "toLocaleString", "valueOf"]],
    [Function.prototype, ["toString"]]];
  for (const E of [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError, AggregateError]) {
    overridable.push([E.prototype, ["constructor", "name", "message", "toString"]]);
  }
  const captured = [];
  for (const [proto, names] of overridable) {
    for (const name of names) enableOverride(proto, name, captured);
  }

  const roots = [globalThis, host, captured];
  for (const make of [
    () => getPrototypeOf(function* () {}),
    () => getPrototypeOf(async function () {}),
    () => getPrototypeOf([][Symbol.iterator]()),
    () => getPrototypeOf(new Map()[Symbol.iterator]()),
    () => getPrototypeOf(new Set()[Symbol.iterator]()),
    () => getPrototypeOf(""[Symbol.iterator]()),
    () => getPrototypeOf(/a/g[Symbol.matchAll]("")),
    () => getPrototypeOf(Int8Array),
    () => getOwnPropertyDescriptor(arguments, "callee").get,
  ]) {
    try { roots.push(make()); } catch (e) { /* not supported by this goja */ }
  }
  harden(roots);

  function guardConstructor(name, check) {
    const Target = globalThis[name];
    const traps = {
      construct(target, args, newTarget) {
        check(args);
        return construct(target, args, newTarget === Guarded ? target : newTarget);
      },
    };
    const Guarded = new Proxy(Target, traps);
    defineProperty(Target.prototype, "constructor", { value: Guarded, writable: true, enumerable: false, configurable: true });
    defineProperty(globalThis, name, { value: Guarded, writable: true, enumerable: false, configurable: true });
  }

  function enableOverride(obj, name, captured) {
    const d = getOwnPropertyDescriptor(obj, name);
    if (!d || !("value" in d) || !d.configurable) return;
    const value = d.value;
    captured.push(value);
    defineProperty(obj, name, {
      get() { return value; },
      set(v) {
        if (this === obj) throw new TypeError(`Cannot assign to read only property '${name}' of a frozen intrinsic`);
        defineProperty(this, name, { value: v, writable: true, enumerable: true, configurable: true });
      },
      enumerable: d.enumerable,
      configurable: false,
    });
  }

  function harden(roots) {
    const seen = new Set();
    const todo = roots.slice();
    while (todo.length > 0) {
      const o = todo.pop();
      if (o === null || (typeof o !== "object" && typeof o !== "function") || seen.has(o)) continue;
      seen.add(o);
      todo.push(getPrototypeOf(o));
      for (const k of ownKeys(o)) {
        const d = getOwnPropertyDescriptor(o, k);
        if ("value" in d) todo.push(d.value); else todo.push(d.get, d.set);
      }
    }
    for (const o of seen) freeze(o);
  }

  // BigInt arithmetic runs natively for as long as its operands are large
  // and cannot be metered: BigInt is not part of gavel's realm (literals
  // are refused at compile time, instrument.go).
  function removeBigInt() {
    for (const name of ["BigInt", "BigInt64Array", "BigUint64Array"]) delete globalThis[name];
    const dv = DataView.prototype;
    for (const name of ["getBigInt64", "setBigInt64", "getBigUint64", "setBigUint64"]) delete dv[name];
  }

  // Code compiled at run time would escape the fuel instrumentation.
  function removeFunctionConstructors() {
    const FunctionPrototype = Function.prototype;
    const noFunction = function Function() { throw new EvalError("the Function constructor is not available"); };
    defineProperty(noFunction, "prototype", { value: FunctionPrototype, writable: false });
    const protos = [FunctionPrototype];
    for (const make of [() => function* () {}, () => async function () {}]) {
      try { protos.push(getPrototypeOf(make())); } catch (e) { /* not supported by this goja */ }
    }
    for (const proto of protos) {
      defineProperty(proto, "constructor", { value: noFunction, writable: false, enumerable: false, configurable: false });
    }
    defineProperty(globalThis, "Function", { value: noFunction, writable: true, enumerable: false, configurable: true });
  }

  // Date sees only UTC: local-time methods and parsing would otherwise
  // depend on the time zone of the replica's process.
  function tameDate() {
    const OriginalDate = globalThis.Date;
    const proto = OriginalDate.prototype;
    const isoDate = /^([+-]\d{6}|\d{4})(-\d{2}(-\d{2})?)?(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;
    const hasZone = /(Z|[+-]\d{2}:\d{2})$/;
    function parse(s) {
      s = String(s);
      if (!isoDate.test(s)) return NaN;
      if (s.includes("T") && !hasZone.test(s)) s += "Z";
      return OriginalDate.parse(s);
    }
    function toPrimitive(v) {
      const exotic = v[Symbol.toPrimitive];
      if (exotic !== undefined && exotic !== null) {
        const r = exotic.call(v, "default");
        if (Object(r) !== r) return r;
      } else {
        for (const m of ["valueOf", "toString"]) {
          const f = v[m];
          if (typeof f === "function") {
            const r = f.call(v);
            if (Object(r) !== r) return r;
          }
        }
      }
      throw new TypeError("Cannot convert object to primitive value");
    }
    function UTCDate(...args) {
      if (new.target === undefined) return proto.toString.call(new OriginalDate(OriginalDate.now()));
      let time;
      if (args.length === 0) {
        time = OriginalDate.now();
      } else if (args.length === 1) {
        let v = args[0];
        if (v instanceof OriginalDate) {
          time = proto.getTime.call(v);
        } else {
          if (v !== null && (typeof v === "object" || typeof v === "function")) v = toPrimitive(v);
          time = typeof v === "string" ? parse(v) : Number(v);
        }
      } else {
        time = OriginalDate.UTC(...args);
      }
      return construct(OriginalDate, [time], new.target === UTCDate ? OriginalDate : new.target);
    }
    defineProperty(UTCDate, "prototype", { value: proto, writable: false, enumerable: false, configurable: false });
    defineProperty(UTCDate, "name", { value: "Date", writable: false, enumerable: false, configurable: true });
    defineProperty(UTCDate, "length", { value: 7, writable: false, enumerable: false, configurable: true });
    for (const k of ["now", "UTC"]) {
      defineProperty(UTCDate, k, { value: OriginalDate[k], writable: true, enumerable: false, configurable: true });
    }
    defineProperty(UTCDate, "parse", { value: parse, writable: true, enumerable: false, configurable: true });
    defineProperty(proto, "constructor", { value: UTCDate, writable: true, enumerable: false, configurable: true });
    const method = (name, f) => defineProperty(proto, name, { value: f, writable: true, enumerable: false, configurable: true });
    for (const n of ["FullYear", "Month", "Date", "Day", "Hours", "Minutes", "Seconds", "Milliseconds"]) {
      method("get" + n, proto["getUTC" + n]);
      if (n !== "Day") method("set" + n, proto["setUTC" + n]);
    }
    method("getTimezoneOffset", function getTimezoneOffset() { return Number.isNaN(proto.getTime.call(this)) ? NaN : 0; });
    const valid = (d) => !Number.isNaN(proto.getTime.call(d));
    method("toString", function toString() { return valid(this) ? proto.toUTCString.call(this) : "Invalid Date"; });
    method("toDateString", function toDateString() { return valid(this) ? proto.toISOString.call(this).slice(0, 10) : "Invalid Date"; });
    method("toTimeString", function toTimeString() { return valid(this) ? proto.toISOString.call(this).slice(11, 19) + " GMT" : "Invalid Date"; });
    method("toLocaleString", function toLocaleString() { return valid(this) ? proto.toISOString.call(this) : "Invalid Date"; });
    method("toLocaleDateString", function toLocaleDateString() { return valid(this) ? proto.toISOString.call(this).slice(0, 10) : "Invalid Date"; });
    method("toLocaleTimeString", function toLocaleTimeString() { return valid(this) ? proto.toISOString.call(this).slice(11, 19) : "Invalid Date"; });
    if ("getYear" in proto) method("getYear", function getYear() { return proto.getUTCFullYear.call(this) - 1900; });
    if ("setYear" in proto) {
      method("setYear", function setYear(y) {
        y = Number(y);
        if (y >= 0 && y <= 99) y += 1900;
        return proto.setUTCFullYear.call(this, y);
      });
    }
    defineProperty(globalThis, "Date", { value: UTCDate, writable: true, enumerable: false, configurable: true });
  }
})
