// check-pack: a CommonJS app. lmdr is an ES module package; require('lmdr') works where Node
// has require(esm) (Node >= 20.19 and >= 22.12 enable it by default); elsewhere it must fail
// with ERR_REQUIRE_ESM and the README's advice (use import() or an ES module app).
let lmdr;
try {
  lmdr = require('lmdr');
} catch (err) {
  if (err.code === 'ERR_REQUIRE_ESM' || err.code === 'ERR_REQUIRE_ASYNC_MODULE') {
    console.log(`   app.cjs: require('lmdr') is refused on Node ${process.versions.node} (${err.code}); import() instead`);
    import('lmdr').then((m) => {
      if (typeof m.Engine?.load !== 'function') throw new Error('import("lmdr") has no Engine.load');
      console.log('   app.cjs: import("lmdr") from CommonJS works');
    }).catch((e) => { console.error(`check-pack app.cjs: ${e.message}`); process.exit(1); });
    return;
  }
  console.error(`check-pack app.cjs: require('lmdr') failed: ${err.stack}`);
  process.exit(1);
}
if (typeof lmdr.Engine?.load !== 'function') {
  console.error('check-pack app.cjs: require("lmdr") has no Engine.load');
  process.exit(1);
}
console.log(`   app.cjs: require('lmdr') works on Node ${process.versions.node} (require(esm))`);
