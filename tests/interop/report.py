"""Runs test modules and prints, per test class, how many tests ran,
passed, were skipped, failed as expected, or failed: the counts the
interoperability note compares between our cluster and NEO/py's.

    python report.py LABEL MODULE...

Exit status 1 if any test failed or errored.
"""
import collections
import sys
import time
import unittest

COLUMNS = ('ran', 'passed', 'skipped', 'expected failures', 'failed')


class CountingResult(unittest.TextTestResult):

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.counts = collections.defaultdict(collections.Counter)

    def count(self, test, outcome):
        self.counts[type(test).__name__][outcome] += 1

    def addSuccess(self, test):
        super().addSuccess(test)
        self.count(test, 'passed')

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.count(test, 'skipped')

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.count(test, 'expected failures')

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.count(test, 'failed')

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.count(test, 'failed')

    def addError(self, test, err):
        super().addError(test, err)
        self.count(test, 'failed')


def main():
    label, modules = sys.argv[1], sys.argv[2:]
    suite = unittest.defaultTestLoader.loadTestsFromNames(modules)
    runner = unittest.TextTestRunner(resultclass=CountingResult, verbosity=1)
    started = time.time()
    result = runner.run(suite)
    elapsed = time.time() - started
    print('\n%s (%.0f s)' % (label, elapsed))
    print('%-22s %s' % ('class', ' '.join('%9s' % c.split()[0] for c in COLUMNS)))
    total = collections.Counter()
    for name, counts in sorted(result.counts.items()):
        counts['ran'] = sum(counts.values())
        total.update(counts)
        print('%-22s %s' % (name, ' '.join('%9u' % counts[c] for c in COLUMNS)))
    print('%-22s %s' % ('total', ' '.join('%9u' % total[c] for c in COLUMNS)))
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == '__main__':
    main()
