<#
.SYNOPSIS
Installs the Shipshape agent for the whole machine and registers its scheduled task.

.DESCRIPTION
Copies shipshape.exe (and the reference policies, when a policies folder sits
beside this script) to "$env:ProgramFiles\Shipshape", adds that folder to the
machine PATH, restricts the agent's data folder "$env:ProgramData\Shipshape"
to SYSTEM and Administrators, and runs `shipshape schedule install --system`,
which registers the task \Shipshape\Report: `shipshape report` as SYSTEM, on
its schedule, with a random delay. With -Server and -Token it also enrolls the
machine. Running it again upgrades the agent in place.

Run it elevated, or as SYSTEM from Intune, Configuration Manager or a GPO
startup script:
  powershell.exe -NoProfile -ExecutionPolicy Bypass -File install.ps1 `
      -Server https://shipshape.example.com -Token sse_...

.PARAMETER Binary
The agent to install. Default: shipshape.exe beside this script.

.PARAMETER Server
The Shipshape server to enroll with (with -Token).

.PARAMETER Token
An enrollment token from `shipshape-server token create --enroll`.

.PARAMETER Every
How often the task runs, e.g. "1h" (the agent's default) or "4h".
#>
[CmdletBinding()]
param(
    [string]$Binary = (Join-Path $PSScriptRoot 'shipshape.exe'),
    [string]$Server,
    [string]$Token,
    [string]$Every
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$principal = New-Object Security.Principal.WindowsPrincipal($identity)
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run this from an elevated PowerShell (Run as administrator), or as SYSTEM.'
}
if (-not (Test-Path -LiteralPath $Binary -PathType Leaf)) {
    throw "No agent at ${Binary}: pass -Binary C:\path\to\shipshape.exe"
}
if ([bool]$Server -ne [bool]$Token) {
    throw '-Server and -Token go together: give both to enroll, or neither.'
}

$dir = Join-Path $env:ProgramFiles 'Shipshape'
$exe = Join-Path $dir 'shipshape.exe'
$data = Join-Path $env:ProgramData 'Shipshape'

# An upgrade: let a report in progress finish its file before replacing it.
Stop-ScheduledTask -TaskPath '\Shipshape\' -TaskName 'Report' -ErrorAction SilentlyContinue

New-Item -ItemType Directory -Force -Path $dir | Out-Null
Copy-Item -LiteralPath $Binary -Destination $exe -Force
$policies = Join-Path $PSScriptRoot 'policies'
if (Test-Path -LiteralPath $policies -PathType Container) {
    New-Item -ItemType Directory -Force -Path (Join-Path $dir 'policies') | Out-Null
    Copy-Item -Path (Join-Path $policies '*.toml') -Destination (Join-Path $dir 'policies') -Force
}

# The agent's configuration, outbox and (file-stored) device key: SYSTEM and
# Administrators only, the Windows counterpart of a root-only 0600 file.
New-Item -ItemType Directory -Force -Path $data | Out-Null
& icacls.exe $data /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' | Out-Null
if ($LASTEXITCODE -ne 0) { throw "icacls could not restrict $data (exit $LASTEXITCODE)" }

$machinePath = [Environment]::GetEnvironmentVariable('Path', 'Machine')
if (($machinePath -split ';') -notcontains $dir) {
    [Environment]::SetEnvironmentVariable('Path', ($machinePath.TrimEnd(';') + ';' + $dir), 'Machine')
}

if ($Server) {
    $enroll = @('enroll', '--server', $Server)
    # The task runs as SYSTEM, which cannot read an administrator's Credential
    # Manager: unless this runs as SYSTEM, keep the key in the restricted file.
    if (-not $identity.IsSystem) { $enroll += @('--key-store', 'file') }
    # Through the environment, not the command line other processes can read.
    $env:SHIPSHAPE_ENROLL_TOKEN = $Token
    try { & $exe @enroll } finally { Remove-Item Env:SHIPSHAPE_ENROLL_TOKEN }
    if ($LASTEXITCODE -ne 0) { throw "shipshape enroll failed (exit $LASTEXITCODE): see its message above" }
}

$schedule = @('schedule', 'install', '--system')
if ($Every) { $schedule += @('--every', $Every) }
& $exe @schedule
if ($LASTEXITCODE -ne 0) { throw "shipshape schedule install failed (exit $LASTEXITCODE): see its message above" }

& $exe --version
Write-Output "Shipshape is installed in $dir; its task is \Shipshape\Report (shipshape schedule status)."
