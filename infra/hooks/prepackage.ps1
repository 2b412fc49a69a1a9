# azd prepackage hook (Windows): install the app's runtime dependencies, as Linux x86-64
# CPython 3.11 wheels, into .python_packages/lib/site-packages. Same steps as prepackage.sh; see
# that file for why the pillow-simd wheel comes from infra/wheelhouse/ instead of a remote build.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$root = Resolve-Path (Join-Path $PSScriptRoot '..' '..')
Set-Location $root

$python = if ($env:PYTHON) { $env:PYTHON } else { 'python' }
$wheelhouse = if ($env:PIXELPIPE_WHEELHOUSE) { $env:PIXELPIPE_WHEELHOUSE } else { 'infra/wheelhouse' }
$platforms = if ($env:PIXELPIPE_WHEEL_PLATFORMS) { $env:PIXELPIPE_WHEEL_PLATFORMS -split '\s+' } `
             else { @('manylinux_2_28_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64') }
$target = '.python_packages/lib/site-packages'

$simdPin = Get-Content requirements.txt | Where-Object { $_ -match '^pillow-simd==' } | Select-Object -First 1
if (-not $simdPin) { Write-Error 'prepackage: requirements.txt pins no pillow-simd; nothing to substitute.' }
$pillowVersion = ($simdPin -replace '^pillow-simd==', '').Trim() + '+simd'

$wheel = Get-ChildItem -Path $wheelhouse -Filter "pillow-$pillowVersion-cp311-cp311-*.whl" -ErrorAction SilentlyContinue |
         Select-Object -First 1
if (-not $wheel) {
    Write-Error ("prepackage: no pillow-simd wheel for Azure in $wheelhouse/ " +
                 "(expected pillow-$pillowVersion-cp311-cp311-manylinux_*_x86_64.whl). " +
                 'Build it with infra/scripts/build-pillow-simd-wheel.sh (Docker) or set PIXELPIPE_WHEELHOUSE. See docs/deployment.md.')
}

$work = New-Item -ItemType Directory -Path (Join-Path ([IO.Path]::GetTempPath()) ([Guid]::NewGuid()))
try {
    $requirements = Join-Path $work 'requirements.txt'
    $constraints = Join-Path $work 'constraints.txt'
    (Get-Content requirements.txt | Where-Object { $_ -notmatch '^\s*pillow-simd==' }) + "pillow==$pillowVersion" |
        Set-Content -Path $requirements -Encoding utf8
    "pillow==$pillowVersion" | Set-Content -Path $constraints -Encoding utf8

    if (Test-Path .python_packages) { Remove-Item -Recurse -Force .python_packages }
    Write-Host "prepackage: installing requirements.txt for Linux x86-64 / CPython 3.11 into $target"
    $platformArgs = @(); foreach ($p in $platforms) { $platformArgs += @('--platform', $p) }
    & $python -m pip install --disable-pip-version-check --quiet --no-cache-dir `
        --target $target @platformArgs `
        --python-version 3.11 --implementation cp --abi cp311 --only-binary=:all: `
        --find-links $wheelhouse `
        --requirement $requirements --constraint $constraints
    if ($LASTEXITCODE -ne 0) { Write-Error 'prepackage: pip install failed.' }

    $dists = @(Get-ChildItem -Path $target -Directory -Filter '*.dist-info' |
               Where-Object { $_.Name -match '^(pillow|pillow_simd)-' } | ForEach-Object { $_.Name })
    $expected = "pillow-$pillowVersion.dist-info"
    if ($dists.Count -ne 1 -or $dists[0] -ne $expected) {
        Write-Error "prepackage: expected only $expected in $target, found $($dists -join ', ')"
    }
    if (-not (Test-Path (Join-Path $target 'PIL/__init__.py'))) { Write-Error "prepackage: $target/PIL is missing" }
    Write-Host "prepackage: $target ready with $expected"
}
finally {
    Remove-Item -Recurse -Force $work -ErrorAction SilentlyContinue
}
