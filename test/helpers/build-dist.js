// jest's globalSetup: the CLI suites run bin/taskflow.js, which loads dist/, so dist/ must match the
// sources under test (rebuilt here when it does not; a hash check otherwise).
'use strict';
module.exports = () => {
  require('../../scripts/build-dist.js').ensureBuilt();
};
