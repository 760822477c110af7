"""ctypes prototypes for the Win32 functions tingxie calls, each declared once.

Import this module only on Windows (``sys.platform == "win32"``); elsewhere it raises
ImportError so a wrong import fails loudly instead of at the first call. Each section
belongs to one area of the app; docs/windows.md lists the documented behaviour relied on.
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import wintypes

if sys.platform != "win32":  # pragma: no cover - the seam exists only on Windows
    raise ImportError("desktop.win32.api is only available on Windows")

# ---------------------------------------------------------------- keyboard input (SendInput)

# desktop.win32.keyboard builds the INPUT array; desktop.win32.native_output sends it.
# GetAsyncKeyState is declared once, under "hooks, raw input, key state".

_out_user32 = ctypes.WinDLL("user32", use_last_error=True)
_out_kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
_out_advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)

MAPVK_VK_TO_VSC = 0

SendInput = _out_user32.SendInput
SendInput.argtypes = [wintypes.UINT, ctypes.c_void_p, ctypes.c_int]  # the packed INPUT array
SendInput.restype = wintypes.UINT

MapVirtualKeyW = _out_user32.MapVirtualKeyW
MapVirtualKeyW.argtypes = [wintypes.UINT, wintypes.UINT]
MapVirtualKeyW.restype = wintypes.UINT


# ---------------------------------------------------------------- clipboard

# desktop.win32.clipboard decides; desktop.win32.native_output calls these. The clipboard
# window is message-only (HWND_MESSAGE, CreateWindowExW and friends under "windows").

WM_RENDERFORMAT = 0x0305
WM_RENDERALLFORMATS = 0x0306
WM_DESTROYCLIPBOARD = 0x0307
GMEM_MOVEABLE = 0x0002
PM_REMOVE = 0x0001
QS_ALLINPUT = 0x04FF
WAIT_TIMEOUT = 0x00000102

OpenClipboard = _out_user32.OpenClipboard
OpenClipboard.argtypes = [wintypes.HWND]
OpenClipboard.restype = wintypes.BOOL

CloseClipboard = _out_user32.CloseClipboard
CloseClipboard.argtypes = []
CloseClipboard.restype = wintypes.BOOL

EmptyClipboard = _out_user32.EmptyClipboard
EmptyClipboard.argtypes = []
EmptyClipboard.restype = wintypes.BOOL

CountClipboardFormats = _out_user32.CountClipboardFormats
CountClipboardFormats.argtypes = []
CountClipboardFormats.restype = ctypes.c_int

EnumClipboardFormats = _out_user32.EnumClipboardFormats
EnumClipboardFormats.argtypes = [wintypes.UINT]
EnumClipboardFormats.restype = wintypes.UINT

GetClipboardData = _out_user32.GetClipboardData
GetClipboardData.argtypes = [wintypes.UINT]
GetClipboardData.restype = wintypes.HANDLE

SetClipboardData = _out_user32.SetClipboardData
SetClipboardData.argtypes = [wintypes.UINT, wintypes.HANDLE]
SetClipboardData.restype = wintypes.HANDLE

RegisterClipboardFormatW = _out_user32.RegisterClipboardFormatW
RegisterClipboardFormatW.argtypes = [wintypes.LPCWSTR]
RegisterClipboardFormatW.restype = wintypes.UINT

GetClipboardSequenceNumber = _out_user32.GetClipboardSequenceNumber
GetClipboardSequenceNumber.argtypes = []
GetClipboardSequenceNumber.restype = wintypes.DWORD

GetClipboardOwner = _out_user32.GetClipboardOwner
GetClipboardOwner.argtypes = []
GetClipboardOwner.restype = wintypes.HWND

GetOpenClipboardWindow = _out_user32.GetOpenClipboardWindow
GetOpenClipboardWindow.argtypes = []
GetOpenClipboardWindow.restype = wintypes.HWND

PeekMessageW = _out_user32.PeekMessageW
PeekMessageW.argtypes = [
    ctypes.POINTER(wintypes.MSG),
    wintypes.HWND,
    wintypes.UINT,
    wintypes.UINT,
    wintypes.UINT,
]
PeekMessageW.restype = wintypes.BOOL

MsgWaitForMultipleObjects = _out_user32.MsgWaitForMultipleObjects
MsgWaitForMultipleObjects.argtypes = [
    wintypes.DWORD,
    ctypes.c_void_p,
    wintypes.BOOL,
    wintypes.DWORD,
    wintypes.DWORD,
]
MsgWaitForMultipleObjects.restype = wintypes.DWORD

GlobalAlloc = _out_kernel32.GlobalAlloc
GlobalAlloc.argtypes = [wintypes.UINT, ctypes.c_size_t]
GlobalAlloc.restype = wintypes.HGLOBAL

GlobalLock = _out_kernel32.GlobalLock
GlobalLock.argtypes = [wintypes.HGLOBAL]
GlobalLock.restype = ctypes.c_void_p

GlobalUnlock = _out_kernel32.GlobalUnlock
GlobalUnlock.argtypes = [wintypes.HGLOBAL]
GlobalUnlock.restype = wintypes.BOOL

GlobalSize = _out_kernel32.GlobalSize
GlobalSize.argtypes = [wintypes.HGLOBAL]
GlobalSize.restype = ctypes.c_size_t

GlobalFree = _out_kernel32.GlobalFree
GlobalFree.argtypes = [wintypes.HGLOBAL]
GlobalFree.restype = wintypes.HGLOBAL


# ---------------------------------------------------------------- processes, tokens, elevation

# desktop.win32.elevation decides; desktop.win32.native_output calls these.

PROCESS_QUERY_LIMITED_INFORMATION = 0x1000
TOKEN_QUERY = 0x0008
TOKEN_INTEGRITY_LEVEL = 25  # TOKEN_INFORMATION_CLASS.TokenIntegrityLevel


class SID_AND_ATTRIBUTES(ctypes.Structure):
    _fields_ = [("Sid", ctypes.c_void_p), ("Attributes", wintypes.DWORD)]


class TOKEN_MANDATORY_LABEL(ctypes.Structure):
    _fields_ = [("Label", SID_AND_ATTRIBUTES)]


OpenProcess = _out_kernel32.OpenProcess
OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
OpenProcess.restype = wintypes.HANDLE

GetCurrentProcess = _out_kernel32.GetCurrentProcess
GetCurrentProcess.argtypes = []
GetCurrentProcess.restype = wintypes.HANDLE

# CloseHandle is declared once, under "jobs".

OpenProcessToken = _out_advapi32.OpenProcessToken
OpenProcessToken.argtypes = [wintypes.HANDLE, wintypes.DWORD, ctypes.POINTER(wintypes.HANDLE)]
OpenProcessToken.restype = wintypes.BOOL

GetTokenInformation = _out_advapi32.GetTokenInformation
GetTokenInformation.argtypes = [
    wintypes.HANDLE,
    ctypes.c_int,
    ctypes.c_void_p,
    wintypes.DWORD,
    ctypes.POINTER(wintypes.DWORD),
]
GetTokenInformation.restype = wintypes.BOOL

GetSidSubAuthorityCount = _out_advapi32.GetSidSubAuthorityCount
GetSidSubAuthorityCount.argtypes = [ctypes.c_void_p]
GetSidSubAuthorityCount.restype = ctypes.POINTER(ctypes.c_ubyte)

GetSidSubAuthority = _out_advapi32.GetSidSubAuthority
GetSidSubAuthority.argtypes = [ctypes.c_void_p, wintypes.DWORD]
GetSidSubAuthority.restype = ctypes.POINTER(wintypes.DWORD)


# ---------------------------------------------------------------- windows, foreground, WinEvents
# The shell thread's hidden window, its message loop, and the foreground tracking
# (desktop.win32.native uses these; docs/windows.md, "Hotkey and shell").

_sh_user32 = ctypes.WinDLL("user32", use_last_error=True)
_sh_kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
_sh_wtsapi32 = ctypes.WinDLL("wtsapi32", use_last_error=True)

LRESULT = ctypes.c_ssize_t
HWND_MESSAGE = -3  # parent of a message-only window
EVENT_SYSTEM_FOREGROUND = 0x0003
WINEVENT_OUTOFCONTEXT = 0x0000
WINEVENT_SKIPOWNPROCESS = 0x0002
GA_ROOT = 2

WNDPROC = ctypes.WINFUNCTYPE(
    LRESULT, wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM
)
WINEVENTPROC = ctypes.WINFUNCTYPE(
    None,
    wintypes.HANDLE,  # HWINEVENTHOOK
    wintypes.DWORD,  # event
    wintypes.HWND,
    wintypes.LONG,  # idObject
    wintypes.LONG,  # idChild
    wintypes.DWORD,  # idEventThread
    wintypes.DWORD,  # dwmsEventTime
)


class WNDCLASSW(ctypes.Structure):
    _fields_ = [
        ("style", wintypes.UINT),
        ("lpfnWndProc", WNDPROC),
        ("cbClsExtra", ctypes.c_int),
        ("cbWndExtra", ctypes.c_int),
        ("hInstance", wintypes.HINSTANCE),
        ("hIcon", wintypes.HICON),
        ("hCursor", wintypes.HANDLE),
        ("hbrBackground", wintypes.HBRUSH),
        ("lpszMenuName", wintypes.LPCWSTR),
        ("lpszClassName", wintypes.LPCWSTR),
    ]


GetModuleHandleW = _sh_kernel32.GetModuleHandleW
GetModuleHandleW.argtypes = [wintypes.LPCWSTR]
GetModuleHandleW.restype = wintypes.HMODULE

GetCurrentThreadId = _sh_kernel32.GetCurrentThreadId
GetCurrentThreadId.argtypes = []
GetCurrentThreadId.restype = wintypes.DWORD

RegisterClassW = _sh_user32.RegisterClassW
RegisterClassW.argtypes = [ctypes.POINTER(WNDCLASSW)]
RegisterClassW.restype = wintypes.ATOM

CreateWindowExW = _sh_user32.CreateWindowExW
CreateWindowExW.argtypes = [
    wintypes.DWORD,
    wintypes.LPCWSTR,
    wintypes.LPCWSTR,
    wintypes.DWORD,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    wintypes.HWND,
    wintypes.HMENU,
    wintypes.HINSTANCE,
    wintypes.LPVOID,
]
CreateWindowExW.restype = wintypes.HWND

DestroyWindow = _sh_user32.DestroyWindow
DestroyWindow.argtypes = [wintypes.HWND]
DestroyWindow.restype = wintypes.BOOL

DefWindowProcW = _sh_user32.DefWindowProcW
DefWindowProcW.argtypes = [wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM]
DefWindowProcW.restype = LRESULT

GetMessageW = _sh_user32.GetMessageW
GetMessageW.argtypes = [ctypes.POINTER(wintypes.MSG), wintypes.HWND, wintypes.UINT, wintypes.UINT]
GetMessageW.restype = wintypes.BOOL  # -1 on error

DispatchMessageW = _sh_user32.DispatchMessageW
DispatchMessageW.argtypes = [ctypes.POINTER(wintypes.MSG)]
DispatchMessageW.restype = LRESULT

PostMessageW = _sh_user32.PostMessageW
PostMessageW.argtypes = [wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM]
PostMessageW.restype = wintypes.BOOL

PostThreadMessageW = _sh_user32.PostThreadMessageW
PostThreadMessageW.argtypes = [wintypes.DWORD, wintypes.UINT, wintypes.WPARAM, wintypes.LPARAM]
PostThreadMessageW.restype = wintypes.BOOL

SetWinEventHook = _sh_user32.SetWinEventHook
SetWinEventHook.argtypes = [
    wintypes.DWORD,
    wintypes.DWORD,
    wintypes.HMODULE,
    WINEVENTPROC,
    wintypes.DWORD,
    wintypes.DWORD,
    wintypes.DWORD,
]
SetWinEventHook.restype = wintypes.HANDLE

UnhookWinEvent = _sh_user32.UnhookWinEvent
UnhookWinEvent.argtypes = [wintypes.HANDLE]
UnhookWinEvent.restype = wintypes.BOOL

GetForegroundWindow = _sh_user32.GetForegroundWindow
GetForegroundWindow.argtypes = []
GetForegroundWindow.restype = wintypes.HWND

SetForegroundWindow = _sh_user32.SetForegroundWindow
SetForegroundWindow.argtypes = [wintypes.HWND]
SetForegroundWindow.restype = wintypes.BOOL

GetAncestor = _sh_user32.GetAncestor
GetAncestor.argtypes = [wintypes.HWND, wintypes.UINT]
GetAncestor.restype = wintypes.HWND

IsWindow = _sh_user32.IsWindow
IsWindow.argtypes = [wintypes.HWND]
IsWindow.restype = wintypes.BOOL

GetClassNameW = _sh_user32.GetClassNameW
GetClassNameW.argtypes = [wintypes.HWND, wintypes.LPWSTR, ctypes.c_int]
GetClassNameW.restype = ctypes.c_int

GetWindowThreadProcessId = _sh_user32.GetWindowThreadProcessId
GetWindowThreadProcessId.argtypes = [wintypes.HWND, ctypes.POINTER(wintypes.DWORD)]
GetWindowThreadProcessId.restype = wintypes.DWORD


# ---------------------------------------------------------------- hooks, raw input, key state
# Raw Input (no hook: nothing Windows can time out), hotkey registration for suppression,
# key state polling while a hold is active (desktop.win32.native).

RIDEV_INPUTSINK = 0x00000100  # receive input while not in the foreground (needs hwndTarget)
RID_INPUT = 0x10000003
HID_USAGE_PAGE_GENERIC = 0x01
HID_USAGE_GENERIC_KEYBOARD = 0x06


class RAWINPUTDEVICE(ctypes.Structure):
    _fields_ = [
        ("usUsagePage", wintypes.USHORT),
        ("usUsage", wintypes.USHORT),
        ("dwFlags", wintypes.DWORD),
        ("hwndTarget", wintypes.HWND),
    ]


RegisterRawInputDevices = _sh_user32.RegisterRawInputDevices
RegisterRawInputDevices.argtypes = [
    ctypes.POINTER(RAWINPUTDEVICE),
    wintypes.UINT,
    wintypes.UINT,
]
RegisterRawInputDevices.restype = wintypes.BOOL

GetRawInputData = _sh_user32.GetRawInputData
GetRawInputData.argtypes = [
    wintypes.HANDLE,  # HRAWINPUT (the WM_INPUT lParam)
    wintypes.UINT,
    wintypes.LPVOID,
    ctypes.POINTER(wintypes.UINT),
    wintypes.UINT,
]
GetRawInputData.restype = wintypes.UINT  # (UINT)-1 on error

GetAsyncKeyState = _sh_user32.GetAsyncKeyState
GetAsyncKeyState.argtypes = [ctypes.c_int]
GetAsyncKeyState.restype = wintypes.SHORT

RegisterHotKey = _sh_user32.RegisterHotKey
RegisterHotKey.argtypes = [wintypes.HWND, ctypes.c_int, wintypes.UINT, wintypes.UINT]
RegisterHotKey.restype = wintypes.BOOL

UnregisterHotKey = _sh_user32.UnregisterHotKey
UnregisterHotKey.argtypes = [wintypes.HWND, ctypes.c_int]
UnregisterHotKey.restype = wintypes.BOOL


# ------------------------------------------------------- single instance, session, registry
# The single-instance mutex (desktop.win32.instance) and session lock notifications.
# The Run key for start at login goes through winreg (stdlib), in desktop.win32.login.

ERROR_ALREADY_EXISTS = 183
ERROR_ACCESS_DENIED = 5
NOTIFY_FOR_THIS_SESSION = 0

CreateMutexW = _sh_kernel32.CreateMutexW
CreateMutexW.argtypes = [wintypes.LPVOID, wintypes.BOOL, wintypes.LPCWSTR]
CreateMutexW.restype = wintypes.HANDLE

WTSRegisterSessionNotification = _sh_wtsapi32.WTSRegisterSessionNotification
WTSRegisterSessionNotification.argtypes = [wintypes.HWND, wintypes.DWORD]
WTSRegisterSessionNotification.restype = wintypes.BOOL

WTSUnRegisterSessionNotification = _sh_wtsapi32.WTSUnRegisterSessionNotification
WTSUnRegisterSessionNotification.argtypes = [wintypes.HWND]
WTSUnRegisterSessionNotification.restype = wintypes.BOOL


# ---------------------------------------------------------------- jobs
# A Job object with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE ties the processes the app starts
# (wsl.exe running the server) to the app: when the last handle to the job closes (the
# app exits, crashes or is ended in Task Manager) Windows terminates every process in it.
# desktop.launcher.Win32JobApi uses these.

_jobs_kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)

JobObjectExtendedLimitInformation = 9  # JOBOBJECTINFOCLASS
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
PROCESS_TERMINATE = 0x0001
PROCESS_SET_QUOTA = 0x0100


class JOBOBJECT_BASIC_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", wintypes.LARGE_INTEGER),
        ("PerJobUserTimeLimit", wintypes.LARGE_INTEGER),
        ("LimitFlags", wintypes.DWORD),
        ("MinimumWorkingSetSize", ctypes.c_size_t),
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", wintypes.DWORD),
        ("Affinity", ctypes.c_size_t),  # ULONG_PTR
        ("PriorityClass", wintypes.DWORD),
        ("SchedulingClass", wintypes.DWORD),
    ]


class IO_COUNTERS(ctypes.Structure):
    _fields_ = [
        ("ReadOperationCount", ctypes.c_ulonglong),
        ("WriteOperationCount", ctypes.c_ulonglong),
        ("OtherOperationCount", ctypes.c_ulonglong),
        ("ReadTransferCount", ctypes.c_ulonglong),
        ("WriteTransferCount", ctypes.c_ulonglong),
        ("OtherTransferCount", ctypes.c_ulonglong),
    ]


class JOBOBJECT_EXTENDED_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", JOBOBJECT_BASIC_LIMIT_INFORMATION),
        ("IoInfo", IO_COUNTERS),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


CreateJobObjectW = _jobs_kernel32.CreateJobObjectW
CreateJobObjectW.argtypes = [wintypes.LPVOID, wintypes.LPCWSTR]
CreateJobObjectW.restype = wintypes.HANDLE

SetInformationJobObject = _jobs_kernel32.SetInformationJobObject
SetInformationJobObject.argtypes = [wintypes.HANDLE, ctypes.c_int, wintypes.LPVOID, wintypes.DWORD]
SetInformationJobObject.restype = wintypes.BOOL

AssignProcessToJobObject = _jobs_kernel32.AssignProcessToJobObject
AssignProcessToJobObject.argtypes = [wintypes.HANDLE, wintypes.HANDLE]
AssignProcessToJobObject.restype = wintypes.BOOL

OpenProcess = _jobs_kernel32.OpenProcess
OpenProcess.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.DWORD]
OpenProcess.restype = wintypes.HANDLE

CloseHandle = _jobs_kernel32.CloseHandle
CloseHandle.argtypes = [wintypes.HANDLE]
CloseHandle.restype = wintypes.BOOL
